//! Finding the organizations a token reaches, so that a customer picks them from a list
//! instead of copying numeric ids and regional hosts out of the browser's address bar.
//!
//! Two lists, one shape: [`DiscoveryScope::Member`] reads `GET /organizations` — every
//! organization the token's user is a member of, in every zone (002) — and
//! [`DiscoveryScope::Instance`] reads `GET /admin/organizations` — every organization of a
//! White Label instance, deleted ones included (003; `admin:read`, instance administrators
//! only). Each organization comes back with the host that serves it, checked against the
//! allowlist: one on a host makesync may not call is listed and marked so, never called.
//! Nothing is stored.

use crate::connection::ConnectionId;
use crate::error::ErrorKind;
use crate::host::{HostAllowlist, HostError, MakeHost};
use crate::make::{MakeApi, MakeError, OrganizationListing};
use crate::token::ApiToken;
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Make(#[from] MakeError),
}

impl DiscoveryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DiscoveryError::Host(_) => ErrorKind::InvalidInput,
            DiscoveryError::Make(e) => e.kind(),
        }
    }
}

/// Which list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryScope {
    /// The organizations the token's user is a member of (`GET /organizations`).
    Member,
    /// Every organization of the White Label instance on the host (`GET /admin/organizations`).
    Instance,
}

/// One organization as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredOrganization {
    pub id: u64,
    pub name: String,
    /// The host to connect it with: its zone when Make names one makesync may call, the host
    /// that was asked when Make names none. `None` when its zone is not allowed.
    pub host: Option<String>,
    /// Make's `zone` when it is a host name makesync may not call (an internal zone name, or a
    /// White Label host missing from `MAKESYNC_EXTRA_HOSTS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Whether makesync may call its host; when false, [`host_note`](Self::host_note) says
    /// what to do.
    pub host_allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_note: Option<String>,
    /// `isPaused`, where Make says (it says only for organizations of the zone asked, 002).
    pub paused: Option<bool>,
    /// Instance lists only: deleted in the White Label instance (it stays listed, 003).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// `license.apiLimit` where Make states it; 0 means Make refuses API access to its data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_limit: Option<u32>,
    /// The instance's own id for it (White Label), where set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// This tenant's connection of it on that host, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<ConnectionId>,
}

impl DiscoveredOrganization {
    /// Reads one listed organization: `asked` is the host the list was read from.
    pub fn from_listing(
        listing: OrganizationListing,
        asked: &MakeHost,
        allowlist: &HostAllowlist,
    ) -> Self {
        let api_limit = listing.api_limit();
        let (host, zone, note) = match listing.zone.as_deref().map(str::trim) {
            None | Some("") => (Some(asked.clone()), None, None),
            Some(zone) => match allowlist.admit(zone) {
                Ok(host) => (Some(host), None, None),
                Err(_) => {
                    let note = format!(
                        "its zone {} is not a host makesync may call — if it is a White Label host, the operator adds it to MAKESYNC_EXTRA_HOSTS",
                        crate::excerpt::excerpt(zone)
                    );
                    // Shown as a field only if it is a plain host name.
                    let zone = MakeHost::parse(zone).ok().map(|h| h.to_string());
                    (None, zone, Some(note))
                }
            },
        };
        Self {
            id: listing.id,
            name: listing.name,
            host_allowed: host.is_some(),
            host: host.map(|h| h.to_string()),
            zone,
            host_note: note,
            paused: listing.is_paused,
            deleted: listing.deleted,
            api_limit,
            external_id: listing.external_id,
            connection_id: None,
        }
    }

    /// Whether Make's plan setting stops the API from reading its data (`apiLimit` 0, 003).
    pub fn api_disabled(&self) -> bool {
        self.api_limit == Some(0)
    }
}

/// Reads the list `scope` names from `host` with `token`, every page, sorted by id.
pub async fn discover(
    make: &MakeApi,
    host: &MakeHost,
    token: ApiToken,
    scope: DiscoveryScope,
) -> Result<Vec<DiscoveredOrganization>, DiscoveryError> {
    discover_until(make, host, token, scope, None).await
}

/// [`discover`], with no request (nor wait before one) that could not end by `deadline` (on
/// the clock's monotonic scale).
pub async fn discover_until(
    make: &MakeApi,
    host: &MakeHost,
    token: ApiToken,
    scope: DiscoveryScope,
    deadline: Option<std::time::Duration>,
) -> Result<Vec<DiscoveredOrganization>, DiscoveryError> {
    let mut client = make.account_client(host, token)?;
    if let Some(deadline) = deadline {
        client = client.with_deadline(deadline);
    }
    let listings = match scope {
        DiscoveryScope::Member => client.list_organizations().await?,
        DiscoveryScope::Instance => client.list_instance_organizations().await?,
    };
    let mut found: Vec<DiscoveredOrganization> = listings
        .into_iter()
        .map(|listing| DiscoveredOrganization::from_listing(listing, host, make.allowlist()))
        .collect();
    found.sort_by_key(|o| o.id);
    tracing::info!(
        host = %host,
        organizations = found.len(),
        instance = scope == DiscoveryScope::Instance,
        "organizations discovered"
    );
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(zone: Option<&str>) -> OrganizationListing {
        serde_json::from_value(serde_json::json!({
            "id": 7, "name": "Acme", "zone": zone, "license": {"apiLimit": 0}
        }))
        .unwrap()
    }

    #[test]
    fn an_organization_takes_its_zone_as_host_and_one_on_another_host_is_marked() {
        let allowlist = HostAllowlist::default();
        let asked = MakeHost::parse("eu1.make.com").unwrap();
        let here = DiscoveredOrganization::from_listing(listing(None), &asked, &allowlist);
        assert_eq!(here.host.as_deref(), Some("eu1.make.com"));
        assert!(here.host_allowed && here.api_disabled());
        let there =
            DiscoveredOrganization::from_listing(listing(Some("us2.make.com")), &asked, &allowlist);
        assert_eq!(there.host.as_deref(), Some("us2.make.com"));
        let internal = DiscoveredOrganization::from_listing(
            listing(Some("slave1.make.cloud")),
            &asked,
            &allowlist,
        );
        assert_eq!(internal.host, None);
        assert!(!internal.host_allowed);
        assert!(internal.host_note.unwrap().contains("MAKESYNC_EXTRA_HOSTS"));
    }
}
