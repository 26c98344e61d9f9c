//! Whether the team member lists read are whole, before any of them is kept.
//!
//! Make documents `GET /teams/{teamId}/user-team-roles` with `pg[]` accepted, an answer
//! without a `pg` echo and no page size: an answer shorter than asked is the whole team, or a
//! list Make cut without saying so. A team stored from a cut list would lose members their
//! team role, so each such answer is checked, cheapest first:
//!
//! 1. **The member list's counts** (no request: the member list is read anyway). Each member
//!    row carries `joinedTeamsCount` and `organizationTeamsCount` (Make's API reference).
//!    Whether they count private spaces, which `GET /teams` leaves out, is not documented, so
//!    the check holds either way: a member is in at least the teams read with them, and what
//!    all members' counts hold beyond the teams read is at most the private spaces
//!    (`organizationTeamsCount` less the teams listed, none when they are not counted), each
//!    of which holds at least its owner. Counts that fit prove that no member is missing
//!    from any team.
//! 2. **The next offset of the largest answers.** A cut applies one limit to every team, so
//!    a cut list is among the longest answers: each of those is read on from its last row
//!    (one request a team), which either finds its end or reads the rest.
//!
//! A doubt neither settles — the endpoint ignores offsets and the counts do not fit — leaves
//! team access not read this run (the team roles last read kept), never part of it.

use super::snapshot::SnapshotMember;
use super::teams::{
    add_grants, not_read, unaffordable, MemberGrants, TeamAccess, UnprovenTeam,
    MAX_TEAM_MEMBERSHIPS,
};
use crate::make::{Allowance, ListEnd, MakeClient, MakeError, Turns};
use crate::organization::OrganizationId;
use futures_util::StreamExt;

/// Team access as read, once its member lists are known to be whole; not read if they may
/// not be.
pub async fn settle_team_access(
    client: &MakeClient,
    organization: OrganizationId,
    access: TeamAccess,
    members: &[SnapshotMember],
) -> Result<TeamAccess, MakeError> {
    let mut grants = match access {
        TeamAccess::Read(grants) if !grants.unproven.is_empty() => grants,
        settled => return Ok(settled),
    };
    if counts_fit(&grants, members) {
        return Ok(TeamAccess::Read(grants));
    }
    let unproven = std::mem::take(&mut grants.unproven);
    let longest = unproven.iter().map(|team| team.rows).max().unwrap_or(0);
    let suspects: Vec<UnprovenTeam> = unproven
        .into_iter()
        .filter(|team| team.rows == longest)
        .collect();
    if let Some(team) = suspects.iter().find(|team| team.offsets_ignored) {
        return Ok(doubt(team));
    }
    if let Some(note) = unaffordable(client, grants.teams_listed + suspects.len()).await {
        return Ok(TeamAccess::Kept(note));
    }
    let ignored = match read_on(client, organization, &mut grants, suspects).await {
        Ok(ignored) => ignored,
        Err(error) => return not_read(error),
    };
    match ignored {
        Some(team) if !counts_fit(&grants, members) => Ok(doubt(&team)),
        _ => Ok(TeamAccess::Read(grants)),
    }
}

/// Reads each suspect team on from its last row and adds what it finds. Returns a team
/// whose endpoint ignored the offset (its answer may still be cut), if one did.
async fn read_on(
    client: &MakeClient,
    organization: OrganizationId,
    grants: &mut MemberGrants,
    suspects: Vec<UnprovenTeam>,
) -> Result<Option<UnprovenTeam>, MakeError> {
    // Owned by each read (not borrowed), as the team reads' are: see `read_team_access`.
    let turns = std::sync::Arc::new(Turns::default());
    let read = grants.len();
    let asked: Vec<_> = suspects
        .into_iter()
        .map(|team| {
            let seen = grants.members_of(team.team.id);
            (team, seen)
        })
        .collect();
    let mut answers = futures_util::stream::iter(asked.into_iter().enumerate())
        .map(|(item, (team, seen))| {
            let turns = turns.clone();
            async move {
                let allowance = Allowance {
                    budget: client.read_budget(),
                    turns: &turns,
                    item,
                };
                let left = MAX_TEAM_MEMBERSHIPS.saturating_sub(read);
                let known = (team.first, team.last, seen);
                let answer = client
                    .continue_team_roles(organization, team.team.id, known, left, allowance)
                    .await;
                (item, team, answer)
            }
        })
        .buffered(client.page_concurrency().max(1) as usize);
    let mut ignored = None;
    while let Some((item, team, answer)) = answers.next().await {
        turns.taken(item);
        let (rows, counted, end) = match answer {
            Some(Ok(read)) => read,
            // A team deleted since it was read, or an answer of one row: nothing to go on.
            Some(Err(MakeError::OrganizationNotFound { .. })) | None => {
                ignored = Some(team);
                continue;
            }
            Some(Err(error)) => return Err(error),
        };
        if end == ListEnd::OffsetsIgnored {
            ignored = Some(team.clone());
        }
        let mut more = Vec::new();
        add_grants(&mut more, &team.team, rows);
        grants.extend(more);
        counted.keep();
    }
    Ok(ignored)
}

/// Whether the members' team counts prove that every team read is whole (see the module's
/// documentation): every member has counts, all give the organization the same number of
/// teams, no member is in fewer teams than read with them, and what the counts hold beyond
/// the teams read is at most the private spaces.
fn counts_fit(grants: &MemberGrants, members: &[SnapshotMember]) -> bool {
    let mut organization_teams = None;
    let mut beyond_read: u64 = 0;
    for member in members {
        let Some(counts) = member.team_counts else {
            return false;
        };
        match organization_teams {
            None => organization_teams = Some(counts.organization),
            Some(teams) if teams != counts.organization => return false,
            Some(_) => {}
        }
        let read = grants.of(member.user_id).count() as u64;
        let Some(beyond) = u64::from(counts.joined).checked_sub(read) else {
            return false;
        };
        beyond_read += beyond;
    }
    let listed = grants.teams_listed as u64;
    let private_spaces = match organization_teams.map(u64::from) {
        Some(teams) if teams < listed => return false,
        Some(teams) => teams - listed,
        None => 0,
    };
    beyond_read <= private_spaces
}

/// Team access not read: one team's answer may be cut, and nothing could tell.
fn doubt(team: &UnprovenTeam) -> TeamAccess {
    TeamAccess::Kept(format!(
        "teams not read: Make's answer for team {} may be cut (it says nothing of paging, and the members' team counts do not match it) — the team roles last read are kept, and read again at the next sync",
        team.team.id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::snapshot::{RoleLabel, TeamCounts};
    use crate::sync::teams::TeamGrant;
    use crate::user::UserStatus;
    use std::sync::Arc;

    fn member(user_id: u64, joined: u32, organization: u32) -> SnapshotMember {
        SnapshotMember {
            user_id,
            name: "x".into(),
            email: "x@example.com".into(),
            role_id: 1,
            role: RoleLabel::named("Member"),
            status: UserStatus::Active,
            last_login: None,
            teams: None,
            team_counts: Some(TeamCounts {
                joined,
                organization,
            }),
        }
    }

    /// Teams 1 and 2 listed; user 1 in both, user 2 in team 1.
    fn grants() -> MemberGrants {
        let grant = |team_id| TeamGrant {
            team_id,
            team_name: Arc::from("t"),
            role_id: 1,
        };
        let mut grants = MemberGrants::new(vec![(1, grant(1)), (1, grant(2)), (2, grant(1))]);
        grants.teams_listed = 2;
        grants
    }

    #[test]
    fn counts_of_the_teams_read_fit() {
        assert!(counts_fit(&grants(), &[member(1, 2, 2), member(2, 1, 2)]));
    }

    #[test]
    fn counts_with_each_owner_s_private_space_fit() {
        // Two private spaces, one each: three teams for user 1, two for user 2, four in all.
        assert!(counts_fit(&grants(), &[member(1, 3, 4), member(2, 2, 4)]));
    }

    #[test]
    fn a_member_missing_from_a_team_read_does_not_fit() {
        // User 2 is in both teams: team 2's list was cut.
        assert!(!counts_fit(&grants(), &[member(1, 2, 2), member(2, 2, 2)]));
        // The same with private spaces counted: one space, but two teams more than read.
        assert!(!counts_fit(&grants(), &[member(1, 3, 3), member(2, 2, 3)]));
    }

    #[test]
    fn counts_that_cannot_describe_the_lists_do_not_fit() {
        // In more teams than the count says; organizations' counts that disagree; fewer
        // teams in the organization than listed; a member without counts.
        assert!(!counts_fit(&grants(), &[member(1, 1, 2), member(2, 1, 2)]));
        assert!(!counts_fit(&grants(), &[member(1, 2, 2), member(2, 1, 3)]));
        assert!(!counts_fit(&grants(), &[member(1, 2, 1), member(2, 1, 1)]));
        let mut without = member(2, 1, 2);
        without.team_counts = None;
        assert!(!counts_fit(&grants(), &[member(1, 2, 2), without]));
    }
}
