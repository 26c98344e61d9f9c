//! Team access, behind the `teams:read` scope: an organization's teams and each team's roles.

use super::{id_ascending, Call, MakeClient, TEAMS_SCOPE};
use crate::make::error::MakeError;
use crate::make::paging::PageWalk;
use crate::make::read_budget::{Allowance, Counted};
use crate::make::wire::{Team, TeamMemberRole};
use crate::organization::OrganizationId;

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
    ) -> Result<(Vec<TeamMemberRole>, Counted), MakeError> {
        let call = Call {
            path: format!("/teams/{team}/user-team-roles"),
            query: Vec::new(),
            organization: Some(organization),
            scope: TEAMS_SCOPE,
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages)
            .with_max_rows(max_members);
        let (rows, counted): (Vec<TeamMemberRole>, Counted) = self
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
        Ok((rows, counted))
    }
}
