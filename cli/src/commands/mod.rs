//! One module per command; this one dispatches and holds what they share.

mod demo;
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
        Command::Users(args) => read::users(&cli.db, args).await,
        Command::Runs(args) => read::runs(&cli.db, args).await,
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

pub fn make_config() -> Result<makesync::make::MakeApiConfig, CliError> {
    makesync::config::make_api_config_from_env().map_err(CliError::input)
}
