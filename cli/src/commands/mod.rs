//! One module per command; this one dispatches and holds what they share.

mod demo;
mod orgs;
mod read;
mod simulator;
mod sync;

use crate::args::{Cli, Command, OrganizationArgs};
use crate::exit::CliError;
use makesync::connection::ConnectionId;
use makesync::error::ErrorKind;
use makesync::host::{HostAllowlist, MakeHost};
use makesync::organization::OrganizationId;
use makesync::store::SqliteStore;
use std::path::Path;
use std::sync::Arc;

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Sync(args) => sync::run(&cli.db, args).await,
        Command::Orgs(args) => orgs::run(args).await,
        Command::Users(args) => read::users(&cli.db, args).await,
        Command::Runs(args) => read::runs(&cli.db, args).await,
        Command::Erase(args) => read::erase(&cli.db, args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Simulator(args) => simulator::run(args).await,
    }
}

/// The organization a command is about, validated.
pub struct Target {
    pub host: MakeHost,
    pub organization: OrganizationId,
    pub connection_id: ConnectionId,
}

impl Target {
    pub fn resolve(args: &OrganizationArgs, allowlist: &HostAllowlist) -> Result<Self, CliError> {
        let host = allowlist.admit(&args.host).map_err(CliError::input)?;
        let organization = OrganizationId::parse(&args.organization).map_err(CliError::input)?;
        let connection_id = ConnectionId::for_organization(&host, organization);
        Ok(Self {
            host,
            organization,
            connection_id,
        })
    }
}

pub fn open_store(db: &Path) -> Result<Arc<SqliteStore>, CliError> {
    SqliteStore::open(db)
        .map(Arc::new)
        .map_err(|e| CliError::new(ErrorKind::Storage, e))
}

/// `MAKESYNC_REMOVED_USER_RETENTION_DAYS`: days a user marked removed is kept (0: for good),
/// the same setting as the functions'.
pub fn removed_user_retention_days() -> Result<u32, CliError> {
    const VARIABLE: &str = "MAKESYNC_REMOVED_USER_RETENTION_DAYS";
    match std::env::var(VARIABLE) {
        Err(_) => Ok(makesync::sync::DEFAULT_REMOVED_USER_RETENTION_DAYS),
        Ok(raw) if raw.trim().is_empty() => Ok(makesync::sync::DEFAULT_REMOVED_USER_RETENTION_DAYS),
        Ok(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|days| *days <= 3650)
            .ok_or_else(|| {
                CliError::input(format!(
                    "{VARIABLE}={} is not valid: a whole number of days from 0 (keep) to 3650",
                    makesync::excerpt::excerpt(&raw)
                ))
            }),
    }
}

pub fn make_config() -> Result<makesync::make::MakeApiConfig, CliError> {
    makesync::config::make_api_config_from_env().map_err(CliError::input)
}
