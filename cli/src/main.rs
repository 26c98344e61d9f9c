//! `makesync`: sync Make organizations into the embedded store, read them back, and run the
//! demo and the Make API simulator.

mod args;
mod commands;
mod exit;
mod output;
mod progress;

use clap::Parser;
use std::process::ExitCode;

// One thread: a sync waits on Make and the store, not the CPU, and a single thread keeps the
// allocator to one arena, which keeps the peak memory of a large organization down.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    makesync::telemetry::init_text(cli.command.default_log_level());
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_quiet_success() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("makesync: {}", output::terminal_safe(&error.message));
            ExitCode::from(error.code)
        }
    }
}
