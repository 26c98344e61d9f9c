//! `makesync users` and `makesync runs`: what the store holds, without calling Make.

use super::{make_config, open_store, Target};
use crate::args::{OrganizationArgs, ReadArgs, RunsArgs};
use crate::exit::CliError;
use crate::output::{self, OrganizationJson, RunJson};
use makesync::connection::Connection;
use makesync::ports::{ConnectionStore, SyncRunStore};
use makesync::store::SqliteStore;
use serde_json::json;
use std::path::Path;

pub async fn users(db: &Path, args: ReadArgs) -> Result<(), CliError> {
    let (store, connection) = stored_connection(db, &args.target).await?;
    if args.json {
        let fields = [
            ("organization", json!(organization(&connection))),
            ("lastSuccessAt", json!(connection.last_success_at)),
        ];
        output::print_users_document(&fields, store.as_ref(), &connection.id).await?;
    } else {
        output::print(output::terminal_safe(&heading(&connection)))?;
        output::print_users_table(store.as_ref(), &connection.id).await?;
    }
    Ok(())
}

pub async fn runs(db: &Path, args: RunsArgs) -> Result<(), CliError> {
    let (store, connection) = stored_connection(db, &args.target).await?;
    let runs = store
        .list_runs(&connection.id, args.limit)
        .await
        .map_err(CliError::internal)?;
    if args.json {
        let runs: Vec<RunJson> = runs.iter().map(RunJson::from).collect();
        let document = json!({ "organization": organization(&connection), "runs": runs });
        output::print(serde_json::to_string_pretty(&document).map_err(CliError::internal)?)?;
    } else {
        output::print(output::terminal_safe(&heading(&connection)))?;
        output::print(output::runs_table(&runs))?;
    }
    Ok(())
}

async fn stored_connection(
    db: &Path,
    args: &OrganizationArgs,
) -> Result<(std::sync::Arc<SqliteStore>, Connection), CliError> {
    let config = make_config()?;
    let target = Target::resolve(args, &config.allowlist)?;
    let store = open_store(db)?;
    let connection = store
        .get_connection(&target.connection_id)
        .await
        .map_err(CliError::internal)?
        .ok_or_else(|| {
            CliError::not_stored(format!(
                    "{} holds nothing for organization {} on {} — run `makesync sync --host {} --org {}` first",
                    db.display(),
                    target.organization,
                    target.host,
                    target.host,
                    target.organization
                ))
        })?;
    Ok((store, connection))
}

fn organization(connection: &Connection) -> OrganizationJson {
    OrganizationJson {
        id: connection.organization_id.get(),
        name: connection.organization_name.clone(),
        host: connection.host.to_string(),
    }
}

fn heading(connection: &Connection) -> String {
    format!(
        "{} — organization {} on {} (last successful sync: {})",
        connection
            .organization_name
            .as_deref()
            .unwrap_or("(name unknown)"),
        connection.organization_id,
        connection.host,
        connection.last_success_at.map_or_else(
            || "never".to_string(),
            |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        )
    )
}

pub async fn erase(db: &Path, args: ReadArgs) -> Result<(), CliError> {
    let (store, connection) = stored_connection(db, &args.target).await?;
    let (users, runs) = store
        .erase_connection(&connection.id)
        .await
        .map_err(CliError::internal)?;
    if args.json {
        output::print(
            json!({"erased": {"organization": organization(&connection), "users": users, "runs": runs}}),
        )?;
    } else {
        output::print(format!(
            "Erased organization {} on {}: {users} users and {runs} runs deleted, the store file vacuumed.",
            connection.organization_id, connection.host
        ))?;
    }
    Ok(())
}
