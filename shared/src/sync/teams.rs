//! Team access: each member's role in each team of the organization.
//!
//! Read from `GET /teams?organizationId=` (the teams, private spaces left out) and, per team,
//! `GET /teams/{teamId}/user-team-roles` (who is in it, with which team role id); the role names
//! come from the roles list the snapshot reads anyway (`GET /users/roles`, team category
//! included). Both team endpoints need the scope `teams:read`, which the integration's tokens
//! need not have: without it, team access is *not read* — the run still succeeds, says why
//! once, and stores no team data rather than part of it. Any other failure fails the run, as
//! for every other list: nothing is changed on doubt. A member list answered without paging
//! information is kept only once `team_check` has found it whole.
//!
//! Cost: one request for the teams (10,000 a page) and one per team (10,000 members a page),
//! `MAKESYNC_PAGE_CONCURRENCY` at a time, all within the organization's request budget.

use crate::make::{
    Allowance, Counted, ListBound, ListEnd, MakeClient, MakeError, Refusal, Team, TeamMemberRole,
    Turns, TEAMS_SCOPE,
};
use crate::organization::OrganizationId;
use futures_util::StreamExt;
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
    /// Every team's members.
    Read(MemberGrants),
    /// Not read, and why (for the run record): what was stored of team access is no longer
    /// known (the token lacks `teams:read`), or the organization's is more than makesync
    /// holds.
    NotRead(String),
    /// Not read this run for a passing reason, and why: the team roles stored are kept.
    Kept(String),
}

/// Every team role of every member, by user id and then team id: a list rather than a map of
/// lists, so that each membership costs its 40 bytes and no more (a map of lists costs some
/// 230 bytes a membership when every member is in one team).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberGrants {
    grants: Vec<(u64, TeamGrant)>,
    /// How many teams `GET /teams` listed.
    pub(super) teams_listed: usize,
    /// The teams whose member list is whole only on Make's word (no `pg` echo): checked
    /// before they are kept (see `team_check`).
    pub(super) unproven: Vec<UnprovenTeam>,
}

/// A team whose member list came without a `pg` echo: what a read of the rest needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnprovenTeam {
    pub team: Team,
    /// The rows its answer held, and its first and last member as given.
    pub rows: usize,
    pub first: u64,
    pub last: u64,
    /// Whether the endpoint was seen to ignore offsets (a further offset brought the same
    /// answer): reading on cannot tell a cut list from a whole one.
    pub offsets_ignored: bool,
}

impl MemberGrants {
    pub(super) fn new(mut grants: Vec<(u64, TeamGrant)>) -> Self {
        sort_grants(&mut grants);
        Self {
            grants,
            ..Self::default()
        }
    }

    /// The members of team `team` as read.
    pub(super) fn members_of(&self, team: u64) -> std::collections::HashSet<u64> {
        self.grants
            .iter()
            .filter(|(_, grant)| grant.team_id == team)
            .map(|(user, _)| *user)
            .collect()
    }

    /// Adds grants read later, kept in the same order.
    pub(super) fn extend(&mut self, more: Vec<(u64, TeamGrant)>) {
        self.grants.extend(more);
        sort_grants(&mut self.grants);
    }

    /// The team roles of user `user`, by team id.
    pub fn of(&self, user: u64) -> impl Iterator<Item = &TeamGrant> {
        let start = self.grants.partition_point(|(u, _)| *u < user);
        self.grants[start..]
            .iter()
            .take_while(move |(u, _)| *u == user)
            .map(|(_, grant)| grant)
    }

    /// Every team role held.
    pub fn all(&self) -> impl Iterator<Item = &TeamGrant> {
        self.grants.iter().map(|(_, grant)| grant)
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

/// Grants by user id and then team id: what [`MemberGrants::of`] searches.
fn sort_grants(grants: &mut [(u64, TeamGrant)]) {
    grants.sort_unstable_by_key(|(user, grant)| (*user, grant.team_id));
}

/// What the run record says when the token cannot read teams.
pub fn lacks_scope_note() -> String {
    format!(
        "teams not read: the token lacks scope {TEAMS_SCOPE} — add it to read team access (users and organization roles were synced)"
    )
}

/// Reads every team of the organization and its members' team roles. The bounds hold while
/// the lists are read: the team list stops at its page that passes [`MAX_TEAMS`], and each
/// team's member list at the memberships left of [`MAX_TEAM_MEMBERSHIPS`] when it is asked;
/// and what the lists hold is counted on the client's read budget with the sync's other
/// lists. Past a bound, team access is not read this run.
pub async fn read_team_access(
    client: &MakeClient,
    organization: OrganizationId,
) -> Result<TeamAccess, MakeError> {
    if client.teams_unreadable() {
        return Ok(TeamAccess::NotRead(lacks_scope_note()));
    }
    let teams = match client.list_teams(organization, MAX_TEAMS).await {
        Ok(teams) => teams,
        Err(error) => return not_read(error),
    };
    let teams_listed = teams.len();
    if let Some(note) = unaffordable(client, teams.len()).await {
        return Ok(TeamAccess::Kept(note));
    }
    let mut grants = Vec::new();
    let read = Arc::new(AtomicUsize::new(0));
    let turns = Arc::new(Turns::default());
    let at_once = client.page_concurrency().max(1) as usize;
    // At most `at_once` teams in flight, the next asked as soon as one answers, taken in team
    // order (past the read budget, a team waits for its turn). Each future owns its team: a
    // future borrowing from the list is not `Send` to the worker's spawned tasks (the
    // compiler cannot prove it for every lifetime).
    let mut answers = futures_util::stream::iter(teams.into_iter().enumerate())
        .map(|(item, team)| {
            let read = read.clone();
            let turns = turns.clone();
            async move {
                let left = MAX_TEAM_MEMBERSHIPS.saturating_sub(read.load(Ordering::Relaxed));
                let allowance = Allowance {
                    budget: client.read_budget(),
                    turns: &turns,
                    item,
                };
                let answer = client
                    .list_team_roles(organization, team.id, left, allowance)
                    .await;
                (item, team, answer)
            }
        })
        .buffered(at_once);
    // What the grants hold, counted on the read budget in place of the lists they are made
    // of (each given back once made into grants); kept only if team access is read.
    let mut counted = Counted::none(client.read_budget());
    let mut unproven = Vec::new();
    while let Some((item, team, answer)) = answers.next().await {
        let (rows, list_counted, end) = match answer {
            Ok(read) => read,
            Err(error) => return team_not_read(error, &team),
        };
        turns.taken(item);
        let memberships = read.fetch_add(rows.len(), Ordering::Relaxed) + rows.len();
        if memberships > MAX_TEAM_MEMBERSHIPS {
            return Ok(too_many_memberships());
        }
        // Each grant, and the team's name once (its grants share it).
        let grant_bytes = std::mem::size_of::<(u64, TeamGrant)>() as u64;
        if let Err(refusal) = counted.take(rows.len() as u64 * grant_bytes + team.name.len() as u64)
        {
            return not_read(refused_memory(refusal));
        }
        if let Some(doubt) = unproven_team(&team, &rows, end) {
            unproven.push(doubt);
        }
        add_grants(&mut grants, &team, rows);
        // The list is made into grants: what it counted is given back.
        drop(list_counted);
    }
    counted.keep();
    let mut grants = MemberGrants::new(grants);
    grants.teams_listed = teams_listed;
    grants.unproven = unproven;
    Ok(TeamAccess::Read(grants))
}

/// Team access not read, or the run failed, for a failed read of one team's members.
fn team_not_read(error: MakeError, team: &Team) -> Result<TeamAccess, MakeError> {
    match error {
        MakeError::ListTooLong {
            bound: ListBound::Rows(_),
            ..
        } => Ok(too_many_memberships()),
        // The organization was just read: a 404 for one of its teams is the team deleted
        // since the list of teams was read — not the organization gone. The rest would be
        // partial: none is kept this time.
        MakeError::OrganizationNotFound { .. } => Ok(TeamAccess::Kept(format!(
            "teams not read: team {} was deleted while the teams were read — the team roles last read are kept, and read again at the next sync",
            team.id
        ))),
        // A team the token may not read leaves the rest partial: none is kept.
        error => not_read(error),
    }
}

/// The team, if its member list is whole only on Make's word.
fn unproven_team(team: &Team, rows: &[TeamMemberRole], end: ListEnd) -> Option<UnprovenTeam> {
    let offsets_ignored = match end {
        ListEnd::Proven => return None,
        ListEnd::OnMakesWord => false,
        ListEnd::OffsetsIgnored => true,
    };
    Some(UnprovenTeam {
        team: team.clone(),
        rows: rows.len(),
        first: rows.first()?.user_id,
        last: rows.last()?.user_id,
        offsets_ignored,
    })
}

/// Why team access is not read this run when its teams need more requests — one each — than
/// half of what the organization's share allows before the run's deadline: the other half is
/// the users' lists' (their pages, a re-read, retries), so team access does not cost the users
/// their sync. Counted from the plan, it says the same at every run of the same plan: team
/// roles are not read at one run and dropped at the next.
pub(super) async fn unaffordable(client: &MakeClient, teams: usize) -> Option<String> {
    let for_teams = client.requests_affordable().await? / 2;
    (teams as u64 > for_teams).then(|| {
        format!(
            "teams not read: the organization's {teams} teams need a request each, more than its API budget allows for teams within one run ({for_teams}) — users and organization roles were synced"
        )
    })
}

/// The error a refused count of team roles stands for (see [`not_read`]).
pub(super) fn refused_memory(refusal: Refusal) -> MakeError {
    let endpoint = "GET /teams/{teamId}/user-team-roles".to_string();
    match refusal {
        Refusal::PastBound(bytes) => MakeError::ListTooLong {
            endpoint,
            bound: ListBound::Bytes(bytes),
        },
        Refusal::NoMemoryFree => MakeError::MemoryTaken { endpoint },
    }
}

pub(super) fn too_many_memberships() -> TeamAccess {
    TeamAccess::NotRead(format!(
        "teams not read: more than {MAX_TEAM_MEMBERSHIPS} team memberships, more than makesync reads"
    ))
}

pub(super) fn add_grants(
    grants: &mut Vec<(u64, TeamGrant)>,
    team: &Team,
    rows: Vec<TeamMemberRole>,
) {
    let name: Arc<str> = Arc::from(team.name.as_str());
    grants.extend(rows.into_iter().map(|row| {
        let grant = TeamGrant {
            team_id: team.id,
            team_name: name.clone(),
            role_id: row.users_role_id,
        };
        (row.user_id, grant)
    }));
}

/// Team access not read when Make refused it for want of `teams:read` (403, or 401 once the
/// token was accepted) or refused a White Label administrator's token for it, or when its
/// lists pass a bound (the teams', or what one sync's lists may hold in memory); not read
/// this run, the team roles stored kept, when the failure is a passing one (Make down or
/// rate limited after the client's retries, an answer that does not parse, no time or memory
/// left this run); any other failure fails the run.
pub(super) fn not_read(error: MakeError) -> Result<TeamAccess, MakeError> {
    match error {
        MakeError::Forbidden { .. } | MakeError::MissingScope { .. } => {
            Ok(TeamAccess::NotRead(lacks_scope_note()))
        }
        MakeError::InstanceTokenRefused { .. } => {
            Ok(TeamAccess::NotRead(format!("teams not read: {error}")))
        }
        MakeError::ListTooLong {
            bound: ListBound::Rows(_),
            ..
        } => Ok(TeamAccess::NotRead(format!(
            "teams not read: the organization has more than the {MAX_TEAMS} teams makesync reads"
        ))),
        MakeError::ListTooLong { .. } => Ok(TeamAccess::NotRead(
            "teams not read: with the users and members, the teams' lists need more memory than this sync may hold — give the function more memory (its MemorySize)".to_string(),
        )),
        passing if passing.kind().is_retryable() => Ok(TeamAccess::Kept(format!(
            "teams not read this time ({passing}) — the team roles last read are kept, and read again at the next sync"
        ))),
        other => Err(other),
    }
}
