//! `makesync sync`: one organization, now, into the embedded store.

use super::{make_config, open_store, Target};
use crate::args::SyncArgs;
use crate::exit::CliError;
use crate::output::{self, OrganizationJson, RunJson};
use crate::progress::ProgressLine;
use chrono::{DateTime, Utc};
use makesync::clock::{Clock, SystemClock};
use makesync::connection::Connection;
use makesync::make::MakeApi;
use makesync::ports::ConnectionStore;
use makesync::run::{SyncReason, SyncRun};
use makesync::store::SqliteStore;
use makesync::sync::SyncEngine;
use makesync::token::ApiToken;
use std::path::Path;
use std::sync::Arc;

pub const TOKEN_ENV: &str = "MAKE_API_TOKEN";

pub async fn run(db: &Path, args: SyncArgs) -> Result<(), CliError> {
    let config = make_config()?;
    let target = Target::resolve(&args.target, &config.allowlist)?;
    let token = read_token(args.token_file.as_deref())?;
    let store = open_store(db)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let make = MakeApi::new(config, clock.clone()).map_err(CliError::internal)?;

    let connection = stored_or_new(store.as_ref(), &target, clock.wall()).await?;
    let progress = Arc::new(ProgressLine::on_stderr());
    let client = make
        .client(&target.host, target.organization, token)
        .map_err(CliError::input)?
        .with_observer(progress.clone());
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), clock)
        .with_removed_user_retention_days(super::removed_user_retention_days()?);
    let report = engine
        .sync(&connection, &client, SyncReason::OnDemand)
        .await;
    progress.finish();

    let name = report
        .organization
        .as_ref()
        .map(|o| o.name.clone())
        .or(connection.organization_name.clone());
    // The run's outcome decides the exit code even when the reader of stdout has gone.
    let printed = print_result(
        &args,
        &target,
        name,
        &report.run,
        store.as_ref(),
        &connection,
    )
    .await;
    if let Some(error) = &report.run.error {
        return Err(CliError::new(error.kind, &error.message));
    }
    if let Some(error) = report.bookkeeping_error {
        return Err(CliError::internal(format!(
            "the sync ran but could not be recorded: {error}"
        )));
    }
    printed
}

/// The connection the local store holds for the target, or a new one of the local tenant.
async fn stored_or_new(
    store: &SqliteStore,
    target: &Target,
    now: DateTime<Utc>,
) -> Result<Connection, CliError> {
    if let Some(connection) = store
        .get_connection(&target.connection_id)
        .await
        .map_err(CliError::internal)?
    {
        return Ok(connection);
    }
    let connection = Connection::new(
        target.connection_id.clone(),
        makesync::tenant::TenantId::local(),
        target.host.clone(),
        target.organization,
        now,
    );
    store
        .create_connection(&connection)
        .await
        .map_err(CliError::internal)?;
    Ok(connection)
}

/// The organization, its users and the run: as one JSON document, or a table and a summary.
/// A failed run in text shows the failure, not the users an earlier sync stored.
async fn print_result(
    args: &SyncArgs,
    target: &Target,
    name: Option<String>,
    run: &SyncRun,
    store: &SqliteStore,
    connection: &Connection,
) -> Result<(), CliError> {
    if args.json {
        let organization = OrganizationJson {
            id: target.organization.get(),
            name,
            host: target.host.to_string(),
        };
        let fields = [
            ("organization", json_value(&organization)?),
            ("run", json_value(&RunJson::from(run))?),
        ];
        output::print_users_document(&fields, store, &connection.id).await?;
    } else {
        output::print(format!(
            "{} — organization {} on {}",
            output::terminal_safe(name.as_deref().unwrap_or("(name unknown)")),
            target.organization,
            target.host
        ))?;
        if run.error.is_none() {
            output::print_users_table(store, &connection.id).await?;
        }
        output::print(output::run_summary(run))?;
        if run.error.is_some() && connection.last_success_at.is_some() {
            output::print(format!(
                "The store still holds the users of the last successful sync: makesync users --host {} --org {}",
                target.host, target.organization
            ))?;
        }
    }
    Ok(())
}

fn json_value(value: &impl serde::Serialize) -> Result<serde_json::Value, CliError> {
    serde_json::to_value(value).map_err(CliError::internal)
}

pub fn read_token(file: Option<&Path>) -> Result<ApiToken, CliError> {
    let raw = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            CliError::input(format!("cannot read the token file {}: {e}", path.display()))
        })?,
        None => std::env::var(TOKEN_ENV).map_err(|_| {
            CliError::input(format!(
                "no Make API token — set {TOKEN_ENV} or pass --token-file FILE with a token that has the scopes organizations:read and user:read"
            ))
        })?,
    };
    ApiToken::parse(&raw).map_err(CliError::input)
}
