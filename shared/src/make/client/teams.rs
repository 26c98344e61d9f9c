//! Team access, behind the `teams:read` scope: an organization's teams and each team's roles.

use super::{id_ascending, Call, MakeClient, TEAMS_SCOPE};
use crate::make::error::MakeError;
use crate::make::paging::{ListEnd, PageWalk};
use crate::make::read_budget::{Allowance, Counted};
use crate::make::wire::{Team, TeamMemberRole};
use crate::organization::OrganizationId;
use std::collections::HashSet;

impl MakeClient {
    /// `GET /teams?organizationId={id}`, every page, by id ascending: the organization's
    /// teams, private spaces left out (listed only with `includePrivateSpaces`, Make's SDK,
    /// teams.ts: a person's own space gives nobody else access). Scope `teams:read` (the
    /// page's "Required scopes"), which the integration's tokens need not have.
    /// At most `max_teams` are read: one more fails the read as [`MakeError::ListTooLong`] at
    /// the page that brings it.
    pub async fn list_teams(
        &self,
        organization: OrganizationId,
        max_teams: usize,
    ) -> Result<Vec<Team>, MakeError> {
        let call = Call {
            path: "/teams".to_string(),
            query: vec![
                ("organizationId", organization.to_string()),
                ("cols[]", "id".to_string()),
                ("cols[]", "name".to_string()),
            ],
            organization: Some(organization),
            scope: TEAMS_SCOPE,
        };
        let walk =
            PageWalk::paged(self.config.page_size, self.config.max_pages).with_max_rows(max_teams);
        self.list_all(&call, "teams", walk, &id_ascending()).await
    }

    /// `GET /teams/{teamId}/user-team-roles`: each member of the team with their team role.
    /// Its documented answer shows no `pg`, though `pg[]` is accepted: `pg[limit]` is sent,
    /// and the answer read whole or page by page, whichever it is. A row about another team
    /// is refused. Scope `teams:read`. At most `max_members` are read, as for
    /// [`list_teams`](Self::list_teams). `allowance` says which of the team lists read at
    /// once (and taken in order) this one is; with the rows comes what they count on the read
    /// budget, given back when dropped.
    pub async fn list_team_roles(
        &self,
        organization: OrganizationId,
        team: u64,
        max_members: usize,
        allowance: Allowance<'_>,
    ) -> Result<(Vec<TeamMemberRole>, Counted, ListEnd), MakeError> {
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages)
            .with_max_rows(max_members);
        self.walk_team_roles(organization, team, walk, allowance)
            .await
    }

    /// The rest of a team's member list after an answer without a `pg` echo, taken for the
    /// whole list (`first` and `last` its first and last rows, `seen` its members): the offset
    /// after it, asked with a limit of its length, one request if the list ends there. Only
    /// the members not in `seen` come back; `ListEnd` says how the list was known to end.
    /// `None` for an answer of under two rows (nothing to anchor the next read on).
    pub async fn continue_team_roles(
        &self,
        organization: OrganizationId,
        team: u64,
        (first, last, seen): (u64, u64, HashSet<u64>),
        max_members: usize,
        allowance: Allowance<'_>,
    ) -> Option<Result<(Vec<TeamMemberRole>, Counted, ListEnd), MakeError>> {
        let walk = PageWalk::after_unechoed(first, last, seen, self.config.max_pages)?
            .with_max_rows(max_members);
        Some(
            self.walk_team_roles(organization, team, walk, allowance)
                .await,
        )
    }

    async fn walk_team_roles(
        &self,
        organization: OrganizationId,
        team: u64,
        walk: PageWalk<TeamMemberRole>,
        allowance: Allowance<'_>,
    ) -> Result<(Vec<TeamMemberRole>, Counted, ListEnd), MakeError> {
        let call = Call {
            path: format!("/teams/{team}/user-team-roles"),
            query: Vec::new(),
            organization: Some(organization),
            scope: TEAMS_SCOPE,
        };
        let (rows, counted, end) = self
            .list_all_within(&call, "userTeamRoles", walk, &[], allowance)
            .await?;
        if let Some(stray) = rows.iter().find(|r| r.team_id.is_some_and(|t| t != team)) {
            return Err(MakeError::Protocol {
                endpoint: call.label(),
                detail: format!(
                    "a row is about team {}, not team {team}",
                    stray.team_id.unwrap_or_default()
                ),
            });
        }
        Ok((rows, counted, end))
    }
}
