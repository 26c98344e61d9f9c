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
//!    the counts hold beyond the teams read is nothing (private spaces not counted), or one
//!    for each of as many members as there are private spaces (`organizationTeamsCount` less
//!    the teams listed: each space counted for its owner). Counts that fit prove that no
//!    member is missing from any team. (Assumed: were Make to count private spaces in
//!    `organizationTeamsCount` and not in `joinedTeamsCount`, a cut leaving out exactly one
//!    membership of as many members as there are private spaces would fit.)
//! 2. **The next offset of the longest answers.** A list Make pages silently is cut at one
//!    limit, so it is among the longest answers: each of those is read on from its last row
//!    (one request a team), which either finds its end or reads the rest; the counts are
//!    then checked again. Only where Make gives no counts do those ends stand for every
//!    team's.
//!
//! A doubt neither settles — the endpoint ignores offsets and the counts do not fit — leaves
//! team access not read this run (the team roles last read kept), never part of it.

use super::snapshot::SnapshotMember;
use super::teams::{
    add_grants, not_read, too_many_memberships, unaffordable, MemberGrants, TeamAccess,
    UnprovenTeam, MAX_TEAM_MEMBERSHIPS,
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
    if counts(&grants, members) == Counts::Fit {
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
    let Some(first) = suspects.first().cloned() else {
        return Ok(TeamAccess::Read(grants));
    };
    if let Some(note) = unaffordable(client, grants.teams_listed + suspects.len()).await {
        return Ok(TeamAccess::Kept(note));
    }
    let ignored = match read_on(client, organization, &mut grants, suspects).await {
        Ok(ignored) => ignored,
        Err(error) => return not_read(error),
    };
    if grants.len() > MAX_TEAM_MEMBERSHIPS {
        return Ok(too_many_memberships());
    }
    // What was read on counts only where the counts prove the rest: a list may be cut at a
    // length of its own (by bytes, say), shorter than the longest. Only where Make gave no
    // counts do the longest answers' ends stand for every team's.
    match (counts(&grants, members), ignored) {
        (Counts::Fit, _) | (Counts::Missing, None) => Ok(TeamAccess::Read(grants)),
        (Counts::Missing, Some(team)) => Ok(doubt(&team)),
        (Counts::DoNotFit, _) => Ok(doubt(&first)),
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
    // The grants found, added once all are in: each addition sorts every grant again.
    let mut more = Vec::new();
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
        add_grants(&mut more, &team.team, rows);
        counted.keep();
    }
    grants.extend(more);
    Ok(ignored)
}

/// What the members' team counts say of the team lists read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// They prove that every team read is whole.
    Fit,
    /// They do not: a member is missing from a team read, or the counts describe lists other
    /// than those read (a member moved between the reads).
    DoNotFit,
    /// A member row carries none.
    Missing,
}

/// Whether the members' team counts prove that every team read is whole (see the module's
/// documentation): every member has counts, all give the organization the same number of
/// teams, no member is in fewer teams than read with them, and what the counts hold beyond
/// the teams read is nothing — or, where the organization counts private spaces beyond the
/// teams listed, one each for as many members as there are private spaces (each its owner's).
fn counts(grants: &MemberGrants, members: &[SnapshotMember]) -> Counts {
    let mut organization_teams = None;
    let mut beyond_read: u64 = 0;
    let mut most_beyond: u64 = 0;
    for member in members {
        let Some(counts) = member.team_counts else {
            return Counts::Missing;
        };
        match organization_teams {
            None => organization_teams = Some(counts.organization),
            Some(teams) if teams != counts.organization => return Counts::DoNotFit,
            Some(_) => {}
        }
        let read = grants.of(member.user_id).count() as u64;
        let Some(beyond) = u64::from(counts.joined).checked_sub(read) else {
            return Counts::DoNotFit;
        };
        beyond_read += beyond;
        most_beyond = most_beyond.max(beyond);
    }
    let listed = grants.teams_listed as u64;
    let private_spaces = match organization_teams.map(u64::from) {
        Some(teams) if teams < listed => return Counts::DoNotFit,
        Some(teams) => teams - listed,
        None => 0,
    };
    let fit = beyond_read == 0 || (beyond_read == private_spaces && most_beyond == 1);
    if fit {
        Counts::Fit
    } else {
        Counts::DoNotFit
    }
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

    fn fits(grants: &MemberGrants, members: &[SnapshotMember]) -> bool {
        counts(grants, members) == Counts::Fit
    }

    #[test]
    fn counts_of_the_teams_read_fit() {
        assert!(fits(&grants(), &[member(1, 2, 2), member(2, 1, 2)]));
    }

    #[test]
    fn counts_with_each_owner_s_private_space_fit() {
        // Two private spaces, one each: three teams for user 1, two for user 2, four in all.
        assert!(fits(&grants(), &[member(1, 3, 4), member(2, 2, 4)]));
    }

    #[test]
    fn a_member_missing_from_a_team_read_does_not_fit() {
        // User 2 is in both teams: team 2's list was cut.
        assert!(!fits(&grants(), &[member(1, 2, 2), member(2, 2, 2)]));
        // The same with private spaces counted: one space, but two teams more than read.
        assert!(!fits(&grants(), &[member(1, 3, 3), member(2, 2, 3)]));
    }

    #[test]
    fn a_missing_membership_does_not_hide_in_the_private_spaces_room() {
        // Two private spaces, but only one member beyond the teams read: a cut, not spaces.
        assert!(!fits(&grants(), &[member(1, 3, 4), member(2, 1, 4)]));
        // Two beyond the teams read, both one member's: not one space each.
        assert!(!fits(&grants(), &[member(1, 4, 4), member(2, 1, 4)]));
    }

    #[test]
    fn counts_that_cannot_describe_the_lists_do_not_fit() {
        // In more teams than the count says; organizations' counts that disagree; fewer
        // teams in the organization than listed; a member without counts.
        assert!(!fits(&grants(), &[member(1, 1, 2), member(2, 1, 2)]));
        assert!(!fits(&grants(), &[member(1, 2, 2), member(2, 1, 3)]));
        assert!(!fits(&grants(), &[member(1, 2, 1), member(2, 1, 1)]));
        let mut without = member(2, 1, 2);
        without.team_counts = None;
        assert!(!fits(&grants(), &[member(1, 2, 2), without]));
    }
}
