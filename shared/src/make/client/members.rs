//! An organization's roles and members: `GET /users/roles`, `…/organizations/{id}/users` and
//! one member at a time.

use super::{Call, MakeClient};
use crate::make::error::MakeError;
use crate::make::listing::Expected;
use crate::make::paging::PageWalk;
use crate::make::read_budget::Counted;
use crate::make::wire::{MemberResponse, OrganizationMember, OrganizationRole, RoleResponse};
use crate::organization::OrganizationId;

impl MakeClient {
    /// `GET /users/roles?organizationId={id}`: role ids and their names, the organization's
    /// own (custom) roles included — Make lists those only when asked for an organization
    /// (Make's SDK, roles.ts). No `cols[]`: every field Make gives by default is read (the
    /// kind of role where it is there). Documented without `pg[]`, so it is asked for whole,
    /// in one request; an answer that echoes `pg` is paged on.
    pub async fn list_roles(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<OrganizationRole>, MakeError> {
        let call = Call {
            path: "/users/roles".to_string(),
            query: vec![("organizationId", organization.to_string())],
            organization: None,
            scope: "user:read",
        };
        self.list_all(
            &call,
            "usersRoles",
            PageWalk::whole(self.config.max_pages),
            &[],
        )
        .await
    }

    /// `GET /users/roles/{id}`: one role — one created after the list was read. `None` when
    /// Make does not know it (or will not say: the endpoint needs Make's role manager, which
    /// private instances lack).
    pub async fn get_role(&self, role: u32) -> Result<Option<OrganizationRole>, MakeError> {
        let call = Call {
            path: format!("/users/roles/{role}"),
            query: Vec::new(),
            organization: None,
            scope: "user:read",
        };
        let body = match self.fetch(&call, &[]).await {
            Ok(body) => body,
            Err(MakeError::Rejected {
                status: 400 | 404 | 405,
                ..
            })
            | Err(MakeError::Forbidden { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        let response: RoleResponse = self.decode(&call, &body)?;
        Ok(Some(response.role))
    }

    /// `GET /organizations/{id}/user-organization-roles`: who is a member, with which role and
    /// invitation state. Documented without `pg[]`; `pg[limit]` is sent anyway, so that the
    /// answer is read whole if Make ignores it and page by page if Make honours it. No sort
    /// is asked: none is documented for this list. `cols[]` (documented for it) asks only the
    /// fields read: the list is the largest answer of a sync, one row per member, and the
    /// other fields would more than double it. The team counts are among them unless the
    /// token is known to lack `teams:read`: they check the team lists.
    ///
    /// `remembered` (the last sync's count) reads ahead only what every shape of the list
    /// needs: from the start, a count of exactly one page asks that page and the read after
    /// it at once (a whole list of exactly the rows asked needs that read too, to be told from
    /// a first page); a larger count is used once an answer has shown the list is paged, so
    /// that a list answered whole never costs a request more.
    pub async fn list_members(
        &self,
        organization: OrganizationId,
        remembered: Option<usize>,
    ) -> Result<Vec<OrganizationMember>, MakeError> {
        let (members, counted) = self.list_members_counted(organization, remembered).await?;
        counted.keep();
        Ok(members)
    }

    /// [`list_members`](Self::list_members), with what the list counts on the read budget:
    /// given back when dropped (the list is read again), unless kept.
    pub async fn list_members_counted(
        &self,
        organization: OrganizationId,
        remembered: Option<usize>,
    ) -> Result<(Vec<OrganizationMember>, Counted), MakeError> {
        let mut query = vec![
            ("cols[]", "userId".to_string()),
            ("cols[]", "usersRoleId".to_string()),
            ("cols[]", "invitation".to_string()),
        ];
        // The team counts check the team lists: asked only where they may be read.
        if !self.teams_unreadable {
            query.push(("cols[]", "joinedTeamsCount".to_string()));
            query.push(("cols[]", "organizationTeamsCount".to_string()));
        }
        let call = Call {
            path: format!("/organizations/{organization}/user-organization-roles"),
            query,
            organization: Some(organization),
            scope: "user:read",
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        let expected = Expected {
            remembered,
            remembered_from_start: remembered.is_some_and(|n| n <= self.config.page_size as usize),
            later: std::future::ready(None),
        };
        self.list_all_expecting(&call, "userOrganizationRoles", walk, &[], expected)
            .await
    }

    /// `GET /organizations/{id}/user-organization-roles/{userId}`: one member, or `None` if
    /// the user is not a member of the organization (Make answers 404).
    pub async fn get_member(
        &self,
        organization: OrganizationId,
        user_id: u64,
    ) -> Result<Option<OrganizationMember>, MakeError> {
        let call = Call {
            path: format!("/organizations/{organization}/user-organization-roles/{user_id}"),
            query: Vec::new(),
            organization: Some(organization),
            scope: "user:read",
        };
        let body = match self.fetch(&call, &[]).await {
            Ok(body) => body,
            Err(MakeError::OrganizationNotFound { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        let response: MemberResponse = self.decode(&call, &body)?;
        Ok(Some(response.member))
    }
}
