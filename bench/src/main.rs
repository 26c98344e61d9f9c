//! `makesync-bench`: measures what docs/benchmarks.md's tables show. Run it with
//! `bash bench/run.sh` (it builds the release binaries and starts moto first);
//! `bash bench/run.sh --smoke` runs every part once, small, as CI does.
//!
//! Everything talks to 127.0.0.1 only: the Make simulator runs in this process (20 ms added to
//! every answer; `MAKESYNC_BENCH_LATENCY_MS` sets another), AWS is moto's server, and the
//! functions run as their built binaries under a stand-in for the Lambda Runtime API (release
//! builds; `--smoke` runs the dev build).

mod cli;
mod cold_start;
mod decoding;
mod erase;
mod hostile;
mod process;
mod roundtrips;
mod scheduler;
mod worker;

use makesync_simulator::{demo_world, Simulator, World};
use std::time::Duration;

/// Added to every simulator answer, unless `MAKESYNC_BENCH_LATENCY_MS` says otherwise.
const LATENCY: Duration = Duration::from_millis(20);

/// The latency the simulator adds to every answer.
fn latency() -> anyhow::Result<Duration> {
    match std::env::var("MAKESYNC_BENCH_LATENCY_MS") {
        Ok(ms) if !ms.trim().is_empty() => {
            Ok(Duration::from_millis(ms.trim().parse().map_err(|_| {
                anyhow::anyhow!("MAKESYNC_BENCH_LATENCY_MS={ms} is not a number of milliseconds")
            })?))
        }
        _ => Ok(LATENCY),
    }
}

/// A Make plan and the requests a minute it gives an organization (`license.apiLimit`; notes
/// "Rate limits": Core 60, Pro 120, Teams 240, Enterprise 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub name: &'static str,
    pub api_limit: u32,
}

pub const ENTERPRISE: Plan = Plan {
    name: "Enterprise",
    api_limit: 1000,
};

/// Every plan, the smallest budget first.
pub const PLANS: [Plan; 4] = [
    Plan {
        name: "Core",
        api_limit: 60,
    },
    Plan {
        name: "Pro",
        api_limit: 120,
    },
    Plan {
        name: "Teams",
        api_limit: 240,
    },
    ENTERPRISE,
];

/// An organization the simulator serves: its id, member count and plan.
#[derive(Debug, Clone, Copy)]
pub struct Organization {
    pub id: u64,
    pub members: u64,
    pub plan: Plan,
}

/// Adds a generated organization of `members` users (the demo token's user among them) on
/// eu1.make.com on the Enterprise plan, with user ids of their own.
pub fn add_organization(world: &mut World, id: u64, members: u64) -> Organization {
    add_organization_on(world, id, members, ENTERPRISE)
}

/// [`add_organization`] on the given plan.
pub fn add_organization_on(world: &mut World, id: u64, members: u64, plan: Plan) -> Organization {
    world.add_generated_organization(
        id,
        "eu1.make.com",
        Some(plan.api_limit),
        members,
        id * 1_000_000,
    );
    world.add_member(id, 1, 12, None);
    Organization {
        id,
        members: members + 1,
        plan,
    }
}

/// Where the benchmark's DynamoDB calls go: "moto", or "dynalite" when `bench/run.sh
/// --dynalite` routes them there (every other service stays on moto).
pub fn dynamodb_name() -> String {
    std::env::var("MAKESYNC_BENCH_DYNAMODB").unwrap_or_else(|_| "moto".to_string())
}

pub fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

pub fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// Prints a markdown table.
pub fn print_table(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    println!("\n### {title}\n");
    println!("| {} |", headers.join(" | "));
    println!("|{}", "---|".repeat(headers.len()));
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}

/// The plans the round trips run on: every one, or the one `MAKESYNC_BENCH_PLAN` names.
fn roundtrip_plans() -> anyhow::Result<Vec<Plan>> {
    let Some(name) = std::env::var("MAKESYNC_BENCH_PLAN")
        .ok()
        .filter(|n| !n.is_empty())
    else {
        return Ok(PLANS.to_vec());
    };
    let plan = PLANS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| {
            let names: Vec<&str> = PLANS.iter().map(|p| p.name).collect();
            anyhow::anyhow!(
                "MAKESYNC_BENCH_PLAN={name} is not a plan; one of {}",
                names.join(", ")
            )
        })?;
    Ok(vec![*plan])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(process::LAUNCH) {
        process::launch(&args[1..]);
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    // `--only cli|roundtrips|decoding|worker|scheduler|erase|hostile|cold-start` runs one part.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    tokio::runtime::Runtime::new()?.block_on(bench(smoke, only))
}

async fn bench(smoke: bool, only: Option<String>) -> anyhow::Result<()> {
    let part = |name: &str| only.as_deref().is_none_or(|only| only == name);
    let mut world = demo_world();
    let latency = latency()?;
    world.faults.latency = latency;
    let cli_sizes: &[u64] = if smoke {
        &[1_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let cli_orgs: Vec<Organization> = cli_sizes
        .iter()
        .enumerate()
        .map(|(n, size)| add_organization(&mut world, 9100 + n as u64, *size))
        .collect();
    // Users in all (the demo token's user among them): 10,000 is exactly one page, the case
    // in which a list must be read once more to show it ended.
    let roundtrip_sizes: &[u64] = if smoke { &[1_000] } else { &[10_000, 100_000] };
    // Each size on each plan, the smallest budget first.
    let mut roundtrip_orgs = Vec::new();
    let plans = roundtrip_plans()?;
    for (n, size) in roundtrip_sizes.iter().enumerate() {
        for (p, plan) in PLANS.iter().enumerate() {
            if !plans.contains(plan) {
                continue;
            }
            let id = 9800 + 10 * n as u64 + p as u64;
            roundtrip_orgs.push(add_organization_on(&mut world, id, *size - 1, *plan));
        }
    }

    let batches = worker::plan_batches(&mut world, smoke);
    let simulator = Simulator::start(world).await?;
    println!(
        "makesync benchmark — {} — simulator latency {} ms{}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        latency.as_millis(),
        if smoke { " — smoke run" } else { "" }
    );

    if part("cli") {
        cli::run(&simulator, &cli_orgs).await?;
    }
    if part("roundtrips") {
        roundtrips::run(&simulator, &roundtrip_orgs).await?;
    }
    if part("decoding") {
        decoding::run(&simulator, &roundtrip_orgs[0], if smoke { 3 } else { 50 }).await?;
    }
    if part("worker") {
        worker::run(&simulator, &batches).await?;
    }
    if part("scheduler") {
        scheduler::run(if smoke { 50 } else { 1000 }).await?;
    }
    if part("erase") {
        erase::run(&simulator, if smoke { 2_000 } else { 100_000 }).await?;
    }
    if part("hostile") {
        hostile::run(smoke).await?;
    }
    if part("cold-start") {
        cold_start::run(&simulator, if smoke { 1 } else { 5 }).await?;
    }
    Ok(())
}
