//! Who the token is and where it reaches: `GET /users/me` (and its scopes), an organization
//! with its plan (which sets the rate budget), and the organizations the token sees.

use super::{id_ascending, Call, MakeClient, ME_PATH};
use crate::make::error::MakeError;
use crate::make::paging::PageWalk;
use crate::make::wire::{
    AuthUser, AuthUserResponse, AuthorizationResponse, OrganizationListing, OrganizationResponse,
    OrganizationSummary,
};
use crate::organization::OrganizationId;

fn listing_columns(columns: &[&str]) -> Vec<(&'static str, String)> {
    columns.iter().map(|c| ("cols[]", c.to_string())).collect()
}

/// Ends a read of the organization's plan when dropped, however the read ended.
struct PlanAnswered<'a>(&'a tokio::sync::watch::Sender<Option<String>>);

impl Drop for PlanAnswered<'_> {
    fn drop(&mut self) {
        self.0.send_replace(None);
    }
}

impl MakeClient {
    /// `GET /users/me`: who the token belongs to.
    pub async fn get_me(&self) -> Result<AuthUser, MakeError> {
        let call = Self::me_call();
        let body = self.fetch(&call, &[]).await?;
        let response: AuthUserResponse = self.decode(&call, &body)?;
        Ok(response.auth_user)
    }

    /// `GET /users/me/current-authorization`: the scopes this client's token has (Make's
    /// SDK, users.ts). Assumed: any valid token may ask; a host that does not answer it
    /// (an older White Label instance) says nothing about the scopes.
    pub async fn token_scopes(&self) -> Result<Vec<String>, MakeError> {
        let call = Call {
            path: format!("{ME_PATH}/current-authorization"),
            query: Vec::new(),
            organization: None,
            scope: "user:read",
        };
        let body = self.fetch(&call, &[]).await?;
        let response: AuthorizationResponse = self.decode(&call, &body)?;
        Ok(response
            .authorization
            .scope
            .into_iter()
            .map(|scope| scope.0)
            .collect())
    }

    pub(in crate::make) fn me_call() -> Call {
        Call {
            path: ME_PATH.to_string(),
            query: Vec::new(),
            organization: None,
            scope: "user:read",
        }
    }

    /// `GET /organizations/{id}`. Also sets this client's request budget from the
    /// organization's `license.apiLimit`, and refuses an organization that Make says lives in
    /// another public zone.
    pub async fn get_organization(
        &self,
        organization: OrganizationId,
    ) -> Result<OrganizationSummary, MakeError> {
        let call = Call {
            path: format!("/organizations/{organization}"),
            query: Vec::new(),
            organization: Some(organization),
            scope: "organizations:read",
        };
        // Requests sent beside this one that would wait for the budget wait until it has set
        // the budget from the plan (see `wait_for_budget`), or ended some other way.
        self.plan_reading.send_replace(Some(call.path.clone()));
        let _answered = PlanAnswered(&self.plan_reading);
        let body = self.fetch(&call, &[]).await?;
        let response: OrganizationResponse = self.decode(&call, &body)?;
        let summary = response.organization;
        if let Some(zone) = &summary.zone {
            // Make reports internal zone names on some instances; only a zone that is itself
            // an admitted public host can be compared with ours.
            if let Ok(zone_host) = self.config.allowlist.admit(zone) {
                if zone_host != self.host {
                    return Err(MakeError::WrongZone {
                        host: self.host.to_string(),
                        zone: zone_host.to_string(),
                        organization: organization.to_string(),
                    });
                }
            }
        }
        let per_minute = self.config.requests_per_minute(summary.api_limit());
        self.lock_budget()
            .set_per_minute(per_minute, self.clock.monotonic());
        Ok(summary)
    }

    /// `GET /organizations`: every organization the token's user is a member of, in every
    /// zone (002), with the host that serves each (`zone`, asked explicitly: Make's SDK lists
    /// without it otherwise), paused state and plan limit where Make says. Read across all
    /// pages in either shape (paged with an echo, or whole), by id so that pages are stable.
    pub async fn list_organizations(&self) -> Result<Vec<OrganizationListing>, MakeError> {
        let call = Call {
            path: "/organizations".to_string(),
            query: listing_columns(&["id", "name", "zone", "isPaused", "externalId", "license"]),
            organization: None,
            scope: "organizations:read",
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        self.list_all(&call, "organizations", walk, &id_ascending())
            .await
    }

    /// `GET /admin/organizations`: every organization of the White Label instance this host
    /// serves, deleted ones included (`deleted: true`, 003). Needs `admin:read` and an
    /// instance administrator; anything else is [`MakeError::InstanceAccessDenied`]. Read
    /// within the bounds of every list (rows and bytes, from the function's memory): the
    /// page that passes them fails the read as [`MakeError::ListTooLong`], before the rest of
    /// the list is asked. (The 5,000 organizations makesync follows count only live ones, and
    /// Make lists deleted ones for good: the listing itself needs the room.)
    pub async fn list_instance_organizations(&self) -> Result<Vec<OrganizationListing>, MakeError> {
        let call = Call {
            path: "/admin/organizations".to_string(),
            query: listing_columns(&[
                "id",
                "name",
                "zone",
                "isPaused",
                "externalId",
                "license",
                "deleted",
            ]),
            organization: None,
            scope: "admin:read",
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        match self
            .list_all(&call, "organizations", walk, &id_ascending())
            .await
        {
            Err(
                MakeError::Forbidden { endpoint, .. } | MakeError::MissingScope { endpoint, .. },
            ) => Err(MakeError::InstanceAccessDenied {
                endpoint,
                host: self.host.to_string(),
            }),
            other => other,
        }
    }
}
