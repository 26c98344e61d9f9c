//! Command-line arguments.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "makesync",
    version,
    about = "Keeps a store up to date with the users of Make organizations"
)]
pub struct Cli {
    /// The embedded store (SQLite file).
    #[arg(
        long,
        global = true,
        env = "MAKESYNC_DB",
        default_value = "makesync.db"
    )]
    pub db: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync one organization now. The token comes from MAKE_API_TOKEN or --token-file.
    Sync(SyncArgs),
    /// Show the stored users of an organization.
    Users(ReadArgs),
    /// Show the recent sync runs of an organization.
    Runs(RunsArgs),
    /// Start the simulator, sync three organizations through scheduler → queue → worker,
    /// change them and sync again.
    Demo(DemoArgs),
    /// Run the Make API simulator on 127.0.0.1 until interrupted.
    Simulator(SimulatorArgs),
}

impl Command {
    /// Logs go to stderr. Commands that print for people keep them to errors, so that a
    /// failure is one line; `RUST_LOG=info` shows every request, retry and wait.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Simulator(_) => "info",
            _ => "error",
        }
    }
}

#[derive(Debug, Args)]
pub struct OrganizationArgs {
    /// The organization's Make host (its zone), e.g. eu1.make.com.
    #[arg(long)]
    pub host: String,
    /// The numeric organization ID.
    #[arg(long = "org")]
    pub organization: String,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub target: OrganizationArgs,
    /// Read the token from this file instead of MAKE_API_TOKEN.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub target: OrganizationArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub target: OrganizationArgs,
    #[arg(long)]
    pub json: bool,
    /// How many runs, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's store in this file (default: a temporary file, removed afterwards).
    #[arg(long = "demo-db")]
    pub demo_db: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulatorArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Added to every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// The most rows a page holds.
    #[arg(long, default_value_t = 25)]
    pub max_page_size: u32,
}
