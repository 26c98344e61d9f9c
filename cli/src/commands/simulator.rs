//! `makesync simulator`: the Make API simulator, standalone.

use crate::args::SimulatorArgs;
use crate::exit::CliError;
use crate::output;
use makesync::clock::SystemClock;
use makesync_simulator::{
    demo_world, ListShape, Simulator, DEMO_INSTANCE_HOST, DEMO_INSTANCE_TOKEN, DEMO_TEAMS_TOKEN,
    DEMO_TOKEN,
};
use std::sync::Arc;
use std::time::Duration;

/// The simulator's tokens and what each grants (the demo world's table, in tests/simulator).
const TOKENS: [&str; 7] = [
    "  sim-token-users-and-orgs         organizations:read, user:read: the three organizations",
    "  sim-token-teams-read             those and teams:read (team roles are read too)",
    "  sim-token-no-user-read           organizations:read only",
    "  sim-token-no-organizations-read  user:read only",
    "  sim-token-revoked                refused: invalid, expired or revoked (401)",
    "  sim-token-outsider               both scopes, but its user is in no organization",
    "  sim-token-instance-admin         administrator of the White Label instance make.partner.example",
];

/// The organization `--generate-members` adds.
pub const GENERATED_ORGANIZATION: u64 = 9001;

pub async fn run(args: SimulatorArgs) -> Result<(), CliError> {
    let mut world = demo_world();
    world.faults.latency = Duration::from_millis(args.latency_ms);
    world.faults.users_list = ListShape::Paged {
        max: args.users_page_cap.max(1),
    };
    world.faults.members_list = args.members;
    world.faults.roles_list = args.roles;
    world.faults.missing_scope_status = args.missing_scope_status;
    world.faults.rate_limit_status = args.rate_limit_status;
    world.faults.organizations_list = args.organizations;
    world.faults.admin_organizations_list = args.organizations;
    world.faults.admin_reads_members = args.admin_reads_members;
    if let Some(members) = args.generate_members {
        world.add_generated_organization(
            GENERATED_ORGANIZATION,
            "eu1.make.com",
            Some(1000),
            members,
            1_000_000,
        );
        world.add_member(GENERATED_ORGANIZATION, 1, 12, None);
    }
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
    output::print(format!("Make API simulator listening on {base}/api/v2"))?;
    output::print(format!("Organizations:\n{}", organizations.join("\n")))?;
    output::print(format!("Tokens:\n{}", TOKENS.join("\n")))?;
    output::print(format!("Try:\n  MAKESYNC_API_BASE_URL={base} MAKE_API_TOKEN={DEMO_TOKEN} makesync orgs --host eu1.make.com\n  MAKESYNC_API_BASE_URL={base} MAKE_API_TOKEN={DEMO_TEAMS_TOKEN} makesync sync --host eu1.make.com --org 1001\n  MAKESYNC_API_BASE_URL={base} MAKESYNC_EXTRA_HOSTS={DEMO_INSTANCE_HOST} MAKE_API_TOKEN={DEMO_INSTANCE_TOKEN} makesync orgs --host {DEMO_INSTANCE_HOST} --instance"))?;
    output::print("Press Ctrl-C to stop.")?;
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| CliError::internal(format!("cannot wait for Ctrl-C: {e}")))?;
    simulator.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_token_shown_is_one_the_simulator_knows() {
        let world = super::demo_world();
        for line in super::TOKENS {
            let token = line.split_whitespace().next().unwrap_or_default();
            assert!(world.tokens.contains_key(token), "{token}");
        }
        assert!(super::TOKENS[0].contains(super::DEMO_TOKEN));
        assert!(super::TOKENS[1].contains(super::DEMO_TEAMS_TOKEN));
    }
}
