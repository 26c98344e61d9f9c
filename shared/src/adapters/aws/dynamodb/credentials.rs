//! Credential items: the credentials table, each credential kept whole with its version. Called
//! from the [`ConnectionStore`] impl in `connections.rs`, whose trait the credential methods
//! belong to.
//!
//! [`ConnectionStore`]: crate::ports::ConnectionStore

use super::{condition_failed, decode, store_error, DynamoStore};
use crate::adapters::aws::item::{number, string, to_item, Item};
use crate::adapters::aws::sdk_error::classify;
use crate::credential::{Credential, CredentialId};
use crate::ports::StoreError;

fn credential_item(credential: &Credential) -> Item {
    let mut item = to_item(serde_json::to_value(credential).expect("a credential serialises"));
    item.remove("id");
    item.insert("credentialId".into(), string(credential.id.as_str()));
    item
}

fn credential_from_item(item: &Item) -> Result<Credential, StoreError> {
    let mut item = item.clone();
    if let Some(id) = item.remove("credentialId") {
        item.insert("id".into(), id);
    }
    decode(&item, "credential")
}

pub(super) async fn create_credential(
    store: &DynamoStore,
    credential: &Credential,
) -> Result<bool, StoreError> {
    let result = store
        .client
        .put_item()
        .table_name(&store.credentials_table)
        .set_item(Some(credential_item(credential)))
        .condition_expression("attribute_not_exists(credentialId)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if condition_failed(&error) => Ok(false),
        Err(error) => Err(store_error(classify(&error))),
    }
}

pub(super) async fn get_credential(
    store: &DynamoStore,
    id: &CredentialId,
) -> Result<Option<Credential>, StoreError> {
    let output = store
        .client
        .get_item()
        .table_name(&store.credentials_table)
        .key("credentialId", string(id.as_str()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| store_error(classify(&e)))?;
    output.item().map(credential_from_item).transpose()
}

pub(super) async fn replace_credential(
    store: &DynamoStore,
    credential: &Credential,
) -> Result<bool, StoreError> {
    let mut next = credential.clone();
    next.version += 1;
    let result = store
        .client
        .put_item()
        .table_name(&store.credentials_table)
        .set_item(Some(credential_item(&next)))
        .condition_expression("version = :expected")
        .expression_attribute_values(":expected", number(credential.version))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if condition_failed(&error) => Ok(false),
        Err(error) => Err(store_error(classify(&error))),
    }
}

pub(super) async fn delete_credential(
    store: &DynamoStore,
    id: &CredentialId,
    expected_version: u64,
) -> Result<bool, StoreError> {
    let result = store
        .client
        .delete_item()
        .table_name(&store.credentials_table)
        .key("credentialId", string(id.as_str()))
        .condition_expression("version = :expected")
        .expression_attribute_values(":expected", number(expected_version))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if condition_failed(&error) => Ok(false),
        Err(error) => Err(store_error(classify(&error))),
    }
}

pub(super) async fn list_instance_credentials(
    store: &DynamoStore,
) -> Result<Vec<Credential>, StoreError> {
    let mut credentials = Vec::new();
    let mut start = None;
    loop {
        let output = store
            .client
            .scan()
            .table_name(&store.credentials_table)
            .filter_expression("attribute_exists(instance)")
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        for item in output.items() {
            credentials.push(credential_from_item(item)?);
        }
        match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    Ok(credentials)
}
