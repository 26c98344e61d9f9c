//! `GET /users`: an organization's users, the list a sync is read from, and the check that the
//! token may read it.

use super::{Call, MakeClient};
use crate::make::error::MakeError;
use crate::make::listing::Expected;
use crate::make::paging::PageWalk;
use crate::make::read_budget::Counted;
use crate::make::wire::{ListPage, MakeUser};
use crate::organization::OrganizationId;

impl MakeClient {
    /// `GET /users?organizationId={id}`, every page, by id ascending: names, emails and last
    /// logins.
    pub async fn list_users(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<MakeUser>, MakeError> {
        self.list_users_expecting(organization, None, std::future::ready(None))
            .await
    }

    /// [`list_users`](Self::list_users), told how many users to expect, so that pages are
    /// read a few at once instead of one after another:
    ///
    /// - `remembered` (the last successful sync's count) is known before any page: the pages
    ///   it covers are asked from the start, the first with them;
    /// - `later` (the member list's length, as it arrives) is used once the first page has
    ///   shown the list is paged and no remembered count is left to go on (none, or the list
    ///   outgrew it): until it answers, the pages are read one after another, and the pages
    ///   it says are left after the one in flight are then read ahead.
    ///
    /// Each page is still checked against the one before (its anchor row) and taken only
    /// where the walk would have asked it, so a wrong number costs at most a few requests,
    /// never a row.
    pub async fn list_users_expecting(
        &self,
        organization: OrganizationId,
        remembered: Option<usize>,
        later: impl std::future::Future<Output = Option<usize>>,
    ) -> Result<Vec<MakeUser>, MakeError> {
        let (users, counted) = self
            .list_users_counted(organization, remembered, later)
            .await?;
        counted.keep();
        Ok(users)
    }

    /// [`list_users_expecting`](Self::list_users_expecting), with what the list counts on the
    /// read budget: given back when dropped (the list is read again), unless kept.
    pub async fn list_users_counted(
        &self,
        organization: OrganizationId,
        remembered: Option<usize>,
        later: impl std::future::Future<Output = Option<usize>>,
    ) -> Result<(Vec<MakeUser>, Counted), MakeError> {
        let call = Self::users_call(organization);
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        let sort = [
            ("pg[sortBy]", "id".to_string()),
            ("pg[sortDir]", "asc".to_string()),
        ];
        let expected = Expected {
            remembered,
            remembered_from_start: true,
            later,
        };
        self.list_all_expecting(&call, "users", walk, &sort, expected)
            .await
    }

    /// One row of `GET /users?organizationId={id}`: proves the token may read the
    /// organization's users (scope `user:read`) without reading them all.
    pub async fn check_user_access(&self, organization: OrganizationId) -> Result<(), MakeError> {
        let call = Self::users_call(organization);
        let paging = [
            ("pg[offset]", "0".to_string()),
            ("pg[limit]", "1".to_string()),
        ];
        let body = self.fetch(&call, &paging).await?;
        let _: ListPage<MakeUser> =
            self.decode_page(&call, "users", &body, self.config.max_list_rows)?;
        Ok(())
    }

    fn users_call(organization: OrganizationId) -> Call {
        Call {
            path: "/users".to_string(),
            query: vec![
                ("organizationId", organization.to_string()),
                ("cols[]", "id".to_string()),
                ("cols[]", "name".to_string()),
                ("cols[]", "email".to_string()),
                ("cols[]", "lastLogin".to_string()),
            ],
            organization: Some(organization),
            scope: "user:read",
        }
    }
}
