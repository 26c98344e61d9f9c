//! The contract of leases: a connection's own and an organization's, each held by one at a
//! time until it is released or runs out.

use super::{at, Store};
use crate::connection::{Connection, ConnectionId};
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use chrono::Duration;

/// One lease at a time, until it expires or is released.
pub(super) async fn check_connection_lease(store: &dyn Store) {
    let now = at("2026-01-01T00:00:00Z");
    let lease = now + Duration::minutes(15);
    let second = ConnectionId::parse("c-1").unwrap();
    store.release_lease(&second).await.unwrap();
    assert!(store.acquire_lease(&second, now, lease).await.unwrap());
    assert!(!store
        .acquire_lease(&second, now + Duration::minutes(1), lease)
        .await
        .unwrap());
    assert!(
        store
            .acquire_lease(&second, lease, lease + Duration::minutes(15))
            .await
            .unwrap(),
        "expired"
    );
    store.release_lease(&second).await.unwrap();
    assert!(
        store.acquire_lease(&second, now, lease).await.unwrap(),
        "released"
    );
    assert!(!store
        .acquire_lease(&ConnectionId::parse("none").unwrap(), now, lease)
        .await
        .unwrap());
}

/// One connection of a Make organization syncs it at a time.
pub(super) async fn check_organization_lease(store: &dyn Store, first: &Connection) {
    let now = at("2026-01-01T00:00:00Z");
    let lease = now + Duration::minutes(15);
    let second = ConnectionId::parse("c-1").unwrap();
    let host = MakeHost::parse("eu1.make.com").unwrap();
    let organization = OrganizationId::new(7).unwrap();
    let (a, b) = (first.id.clone(), second.clone());
    assert!(store
        .acquire_organization_lease(&host, organization, &a, now, lease)
        .await
        .unwrap());
    assert!(
        store
            .acquire_organization_lease(&host, organization, &a, now, lease)
            .await
            .unwrap(),
        "its holder may take it again"
    );
    assert!(!store
        .acquire_organization_lease(&host, organization, &b, now, lease)
        .await
        .unwrap());
    assert!(store
        .acquire_organization_lease(&host, OrganizationId::new(8).unwrap(), &b, now, lease)
        .await
        .unwrap());
    store
        .release_organization_lease(&host, organization, &b)
        .await
        .unwrap();
    assert!(
        !store
            .acquire_organization_lease(&host, organization, &b, now, lease)
            .await
            .unwrap(),
        "only its holder releases it"
    );
    assert!(
        store
            .acquire_organization_lease(
                &host,
                organization,
                &b,
                lease,
                lease + Duration::minutes(15)
            )
            .await
            .unwrap(),
        "expired"
    );
    store
        .release_organization_lease(&host, organization, &b)
        .await
        .unwrap();
    assert!(store
        .acquire_organization_lease(&host, organization, &a, now, lease)
        .await
        .unwrap());
}
