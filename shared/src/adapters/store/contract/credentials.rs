//! The contract of credentials: versioned writes, instance credentials listed, and a
//! connection's credential read through it.

use super::{at, connection, Store};
use crate::connection::ConnectionId;
use crate::credential::{Credential, CredentialId};
use crate::host::MakeHost;
use crate::tenant::TenantId;

/// A credential round-trips whole, is created only if its id is free, replaced and deleted
/// only at the version read, found for its own tenant only, and listed among the instances
/// only when it follows one; a connection keeps the credential it was created with.
pub(super) async fn check_credentials(store: &dyn Store) {
    let tenant = TenantId::parse("tenant-1").unwrap();
    let id = CredentialId::generate();
    let mut credential = Credential::new(
        tenant.clone(),
        MakeHost::parse("eu1.make.com").unwrap(),
        &id.new_token_version(),
        id.clone(),
        at("2026-01-01T00:00:00Z"),
    );
    credential.connections = ["k-1", "k-2"]
        .iter()
        .map(|c| ConnectionId::parse(c).unwrap())
        .collect();
    assert!(store.create_credential(&credential).await.unwrap());
    assert!(!store.create_credential(&credential).await.unwrap());
    assert_eq!(
        store.get_credential(&id).await.unwrap(),
        Some(credential.clone())
    );
    assert_eq!(
        store
            .get_tenant_credential(&TenantId::parse("tenant-2").unwrap(), &id)
            .await
            .unwrap(),
        None
    );
    assert!(store.list_instance_credentials().await.unwrap().is_empty());

    // Two writers read version 1: the first wins, the second changes nothing.
    let mut rotated = credential.clone();
    rotated.token_version = Some("v2".into());
    let mut shrunk = credential.clone();
    shrunk
        .connections
        .remove(&ConnectionId::parse("k-1").unwrap());
    assert!(store.replace_credential(&rotated).await.unwrap());
    assert!(!store.replace_credential(&shrunk).await.unwrap());
    let stored = store.get_credential(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.token_version.as_deref(), Some("v2"));
    assert_eq!(stored.connections.len(), 2);

    let mut follows = stored.clone();
    follows.instance = Some(crate::credential::InstanceFollow {
        auto_connect: true,
        seen: [5001, 5002].into(),
        ..Default::default()
    });
    assert!(store.replace_credential(&follows).await.unwrap());
    let listed = store.list_instance_credentials().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance, follows.instance);
    assert_eq!(listed[0].version, 3);

    assert!(!store.delete_credential(&id, 2).await.unwrap());
    assert!(store.delete_credential(&id, 3).await.unwrap());
    assert_eq!(store.get_credential(&id).await.unwrap(), None);

    check_credential_connection(store, &id).await;
}

/// A connection of a credential: it names it; connected again after it left the credential,
/// on a token of its own; what Make said of its token's scopes kept until a new token's.
async fn check_credential_connection(store: &dyn Store, id: &CredentialId) {
    let mut member = connection("k-1");
    member.credential_id = Some(id.clone());
    member.teams_readable = Some(false);
    assert!(store.create_connection(&member).await.unwrap());
    let read = store.get_connection(&member.id).await.unwrap().unwrap();
    assert_eq!(read.credential_id.as_ref(), Some(id));
    // Connected again after it left its credential: on a token of its own from then on.
    let own =
        crate::connection::ConnectionUpdate::reconnect_detached(Some("v9".into()), None, None);
    assert!(store
        .update_connection(&member.id, read.version, &own)
        .await
        .unwrap());
    let detached = store.get_connection(&member.id).await.unwrap().unwrap();
    assert_eq!(detached.credential_id, None);
    assert_eq!(detached.token_version.as_deref(), Some("v9"));
    assert_eq!(
        detached.teams_readable,
        Some(false),
        "kept: the update did not say"
    );
    // A new token Make said nothing of: its scopes are unknown again.
    let mut unknown =
        crate::connection::ConnectionUpdate::reconnect(Some("v10".into()), None, None);
    unknown.teams_readable = Some(None);
    assert!(store
        .update_connection(&member.id, detached.version, &unknown)
        .await
        .unwrap());
    let stored = store.get_connection(&member.id).await.unwrap().unwrap();
    assert_eq!(stored.teams_readable, None);
    let mut known = crate::connection::ConnectionUpdate::reconnect(Some("v11".into()), None, None);
    known.teams_readable = Some(Some(true));
    assert!(store
        .update_connection(&member.id, stored.version, &known)
        .await
        .unwrap());
    let stored = store.get_connection(&member.id).await.unwrap().unwrap();
    assert_eq!(stored.teams_readable, Some(true));
}
