//! Command-line arguments.

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use makesync_simulator::ListShape;
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
    /// List the organizations a token reaches (or, with --instance, every organization of a
    /// White Label instance), each with the host to connect it on. Nothing is stored.
    Orgs(OrgsArgs),
    /// Show the stored users of an organization.
    Users(ReadArgs),
    /// Show the recent sync runs of an organization.
    Runs(RunsArgs),
    /// Erase everything the store holds about an organization: its users, its runs and the
    /// connection, then vacuum the file so that nothing lingers in its free pages.
    Erase(ReadArgs),
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
pub struct OrgsArgs {
    /// The Make host to ask, e.g. eu1.make.com (organizations of every zone are listed).
    #[arg(long)]
    pub host: String,
    /// Every organization of the White Label instance on --host (needs admin:read).
    #[arg(long)]
    pub instance: bool,
    /// Read the token from this file instead of MAKE_API_TOKEN.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub target: OrganizationArgs,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub target: OrganizationArgs,
    /// Print one JSON document instead of a table.
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
    /// The most rows a page of GET /users holds.
    #[arg(long, default_value_t = 10_000)]
    pub users_page_cap: u32,
    /// How the member list answers: `unpaged` (documented), `paged:N` (pages of at most N),
    /// or `cut:N` (whole, but only the first N rows).
    #[arg(long, default_value = "unpaged", value_parser = parse_list_shape)]
    pub members: ListShape,
    /// How GET /users/roles answers: `unpaged` (documented), `paged:N` or `cut:N`.
    #[arg(long, default_value = "unpaged", value_parser = parse_list_shape)]
    pub roles: ListShape,
    /// How GET /organizations and GET /admin/organizations answer: `paged:N` (documented,
    /// with an echo; N is 10000) or `unpaged`.
    #[arg(long, default_value = "paged:10000", value_parser = parse_list_shape)]
    pub organizations: ListShape,
    /// Let a White Label administrator's admin:read token read the users of organizations it
    /// is not a member of (undocumented: off by default).
    #[arg(long)]
    pub admin_reads_members: bool,
    /// The status for a token that lacks a scope: 403 or 401.
    #[arg(long, default_value_t = 403, value_parser = clap::builder::PossibleValuesParser::new(["401", "403"]).map(|s| s.parse::<u16>().unwrap_or(403)))]
    pub missing_scope_status: u16,
    /// The status for a spent rate limit: 429 or 418.
    #[arg(long, default_value_t = 429, value_parser = clap::builder::PossibleValuesParser::new(["418", "429"]).map(|s| s.parse::<u16>().unwrap_or(429)))]
    pub rate_limit_status: u16,
    /// Also serve organization 9001 on eu1.make.com with this many generated members
    /// (the demo token's user is one of them).
    #[arg(long)]
    pub generate_members: Option<u64>,
}

fn parse_list_shape(text: &str) -> Result<ListShape, String> {
    let number = |n: &str| {
        n.parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{n:?} is not a positive number"))
    };
    match text.split_once(':') {
        None if text == "unpaged" => Ok(ListShape::Unpaged),
        Some(("paged", n)) => Ok(ListShape::Paged { max: number(n)? }),
        Some(("cut", n)) => Ok(ListShape::UnpagedCut { at: number(n)? }),
        _ => Err("use unpaged, paged:N or cut:N".to_string()),
    }
}
