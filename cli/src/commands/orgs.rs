//! `makesync orgs`: the organizations a token reaches, to pick which to sync.

use super::make_config;
use super::sync::read_token;
use crate::args::OrgsArgs;
use crate::exit::CliError;
use crate::output::{self, table, terminal_safe};
use makesync::clock::{Clock, SystemClock};
use makesync::discover::{discover, DiscoveredOrganization, DiscoveryError, DiscoveryScope};
use makesync::make::MakeApi;
use std::sync::Arc;

pub async fn run(args: OrgsArgs) -> Result<(), CliError> {
    let config = make_config()?;
    let host = config
        .allowlist
        .admit(&args.host)
        .map_err(CliError::input)?;
    let token = read_token(args.token_file.as_deref())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let make = MakeApi::new(config, clock).map_err(CliError::internal)?;
    let scope = if args.instance {
        DiscoveryScope::Instance
    } else {
        DiscoveryScope::Member
    };
    let organizations = discover(&make, &host, token, scope)
        .await
        .map_err(|e| match e {
            DiscoveryError::Host(e) => CliError::input(e),
            DiscoveryError::Make(e) => CliError::new(e.kind(), e),
        })?;
    if args.json {
        let document = serde_json::json!({
            "host": host.to_string(),
            "instance": args.instance,
            "organizations": organizations,
        });
        return output::print(serde_json::to_string_pretty(&document).map_err(CliError::internal)?);
    }
    output::print(organizations_table(&organizations, args.instance))
}

fn organizations_table(organizations: &[DiscoveredOrganization], instance: bool) -> String {
    let mut headers = vec!["ID", "NAME", "HOST", "PAUSED", "API"];
    if instance {
        headers.push("DELETED");
    }
    let rows: Vec<Vec<String>> = organizations
        .iter()
        .map(|o| {
            let host = match (&o.host, &o.zone) {
                (Some(host), _) => host.clone(),
                (None, Some(zone)) => format!("{zone} (not allowed)"),
                (None, None) => "(not allowed)".to_string(),
            };
            let yes_no = |flag: Option<bool>| match flag {
                Some(true) => "yes",
                Some(false) => "no",
                None => "?",
            };
            let api = if o.api_disabled() {
                "disabled".to_string()
            } else {
                o.api_limit
                    .map_or("?".to_string(), |limit| format!("{limit}/min"))
            };
            let mut row = vec![
                o.id.to_string(),
                terminal_safe(&o.name),
                terminal_safe(&host),
                yes_no(o.paused).to_string(),
                api,
            ];
            if instance {
                row.push(yes_no(o.deleted).to_string());
            }
            row
        })
        .collect();
    table(&headers, &rows)
}
