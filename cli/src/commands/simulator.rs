//! `makesync simulator`: the Make API simulator, standalone.

use crate::args::SimulatorArgs;
use crate::exit::CliError;
use makesync::clock::SystemClock;
use makesync_simulator::{demo_world, Simulator, DEMO_TOKEN};
use std::sync::Arc;
use std::time::Duration;

pub async fn run(args: SimulatorArgs) -> Result<(), CliError> {
    let mut world = demo_world();
    world.faults.latency = Duration::from_millis(args.latency_ms);
    world.faults.max_page_size = args.max_page_size.max(1);
    let organizations: Vec<String> = world
        .organizations
        .values()
        .map(|o| {
            format!(
                "  {} {:<24} zone {:<22} {} members",
                o.id,
                o.name,
                o.zone,
                o.members.len()
            )
        })
        .collect();
    let simulator = Simulator::start_on(world, Arc::new(SystemClock::default()), args.port)
        .await
        .map_err(|e| {
            CliError::internal(format!("cannot listen on 127.0.0.1:{}: {e}", args.port))
        })?;
    let base = simulator.base_url();
    println!("Make API simulator listening on {base}/api/v2");
    println!("Organizations:\n{}", organizations.join("\n"));
    println!("Tokens: {DEMO_TOKEN} (full access), sim-token-no-user-read, sim-token-revoked, sim-token-outsider");
    println!("Try:\n  MAKESYNC_API_BASE_URL={base} MAKE_API_TOKEN={DEMO_TOKEN} makesync sync --host eu1.make.com --org 1001");
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| CliError::internal(format!("cannot wait for Ctrl-C: {e}")))?;
    simulator.stop().await;
    Ok(())
}
