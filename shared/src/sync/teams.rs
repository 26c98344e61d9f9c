//! Team access: each member's role in each team of the organization.
//!
//! Read from `GET /teams?organizationId=` (the teams, private spaces left out) and, per team,
//! `GET /teams/{teamId}/user-team-roles` (who is in it, with which team role id); the role names
//! come from the roles list the snapshot reads anyway (`GET /users/roles`, team category
//! included). Both team endpoints need the scope `teams:read`, which the integration's tokens
//! need not have: without it, team access is *not read* — the run still succeeds, says why
//! once, and stores no team data rather than part of it. Any other failure fails the run, as
//! for every other list: nothing is changed on doubt.
//!
//! Cost: one request for the teams (10,000 a page) and one per team (10,000 members a page),
//! `MAKESYNC_PAGE_CONCURRENCY` at a time, all within the organization's request budget.

use crate::make::{AnswersInFlight, MakeClient, MakeError, Team, TEAMS_SCOPE};
use crate::organization::OrganizationId;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The most teams read of one organization, and the most team memberships in all: past
/// either, team access is not read (and the run says so) rather than growing memory at a
/// host's word. 10,000 members, each in two teams, are 20,000 memberships.
pub const MAX_TEAMS: usize = 5_000;
pub const MAX_TEAM_MEMBERSHIPS: usize = 500_000;

/// One member's role in one team, as read: the role's name is filled in from the roles list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamGrant {
    pub team_id: u64,
    pub team_name: Arc<str>,
    pub role_id: u32,
}

/// What a run learnt of team access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamAccess {
    /// Every team's members: by user id, their grants by team id.
    Read(HashMap<u64, Vec<TeamGrant>>),
    /// Not read, and why (for the run record).
    NotRead(String),
}

/// What the run record says when the token cannot read teams.
pub fn lacks_scope_note() -> String {
    format!(
        "teams not read: the token lacks scope {TEAMS_SCOPE} — add it to read team access (users and organization roles were synced)"
    )
}

/// Reads every team of the organization and its members' team roles. The bounds hold while
/// the lists are read: the team list stops at its page that passes [`MAX_TEAMS`], and each
/// team's member list at the memberships left of [`MAX_TEAM_MEMBERSHIPS`] when it is asked.
pub async fn read_team_access(
    client: &MakeClient,
    organization: OrganizationId,
) -> Result<TeamAccess, MakeError> {
    let teams = match client.list_teams(organization, MAX_TEAMS).await {
        Ok(teams) => teams,
        Err(MakeError::ListTooLong { .. }) => {
            return Ok(TeamAccess::NotRead(format!(
            "teams not read: the organization has more than the {MAX_TEAMS} teams makesync reads"
        )))
        }
        Err(error) => return not_read(error),
    };
    let mut grants: HashMap<u64, Vec<TeamGrant>> = HashMap::new();
    let read = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AnswersInFlight::new(client.bytes_in_flight()));
    let at_once = client.page_concurrency().max(1) as usize;
    // At most `at_once` teams in flight, the next asked as soon as one answers, and what they
    // hold until taken within the bytes a read may hold; in team order. Each future owns its
    // team: a future borrowing from the list is not `Send` to the worker's spawned tasks (the
    // compiler cannot prove it for every lifetime).
    let mut answers = futures_util::stream::iter(teams.into_iter().enumerate())
        .map(|(item, team)| {
            let read = read.clone();
            let in_flight = in_flight.clone();
            async move {
                let left = MAX_TEAM_MEMBERSHIPS.saturating_sub(read.load(Ordering::Relaxed));
                let answer = client
                    .list_team_roles(organization, team.id, left, in_flight.allowance(item))
                    .await;
                (item, team, answer)
            }
        })
        .buffered(at_once);
    while let Some((item, team, answer)) = answers.next().await {
        match answer {
            Ok((rows, bytes)) => {
                in_flight.taken(item, bytes);
                let memberships = read.fetch_add(rows.len(), Ordering::Relaxed) + rows.len();
                if memberships > MAX_TEAM_MEMBERSHIPS {
                    return Ok(too_many_memberships());
                }
                add_grants(&mut grants, &team, rows)
            }
            Err(MakeError::ListTooLong { .. }) => return Ok(too_many_memberships()),
            // A team the token may not read leaves the rest partial: none is kept.
            Err(error) => return not_read(error),
        }
    }
    for member in grants.values_mut() {
        member.sort_unstable_by_key(|grant| grant.team_id);
    }
    Ok(TeamAccess::Read(grants))
}

fn too_many_memberships() -> TeamAccess {
    TeamAccess::NotRead(format!(
        "teams not read: more than {MAX_TEAM_MEMBERSHIPS} team memberships, more than makesync reads"
    ))
}

fn add_grants(
    grants: &mut HashMap<u64, Vec<TeamGrant>>,
    team: &Team,
    rows: Vec<crate::make::TeamMemberRole>,
) {
    let name: Arc<str> = Arc::from(team.name.as_str());
    for row in rows {
        grants.entry(row.user_id).or_default().push(TeamGrant {
            team_id: team.id,
            team_name: name.clone(),
            role_id: row.users_role_id,
        });
    }
}

/// Team access not read when Make refused it for want of `teams:read` (403, or 401 once the
/// token was accepted) or refused a White Label administrator's token for it; any other
/// failure fails the run.
fn not_read(error: MakeError) -> Result<TeamAccess, MakeError> {
    match error {
        MakeError::Forbidden { .. } | MakeError::MissingScope { .. } => {
            Ok(TeamAccess::NotRead(lacks_scope_note()))
        }
        MakeError::InstanceTokenRefused { .. } => {
            Ok(TeamAccess::NotRead(format!("teams not read: {error}")))
        }
        other => Err(other),
    }
}
