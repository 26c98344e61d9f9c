//! Credential rows: the `credentials` table, each credential kept whole as JSON with its
//! version and whether it is an instance's. Called from the [`ConnectionStore`] impl in
//! `connections.rs`, whose trait the credential methods belong to.
//!
//! [`ConnectionStore`]: crate::ports::ConnectionStore

use super::{backend, SqliteStore};
use crate::credential::{Credential, CredentialId};
use crate::ports::StoreError;
use rusqlite::{params, OptionalExtension};

fn credential_from_body(body: &str) -> Result<Credential, StoreError> {
    // The position only: serde's message may quote a value.
    serde_json::from_str(body).map_err(|e| {
        StoreError::Corrupt(format!(
            "a stored credential does not parse (column {})",
            e.column()
        ))
    })
}

pub(super) async fn create_credential(
    store: &SqliteStore,
    credential: &Credential,
) -> Result<bool, StoreError> {
    let body = serde_json::to_string(credential).map_err(|e| StoreError::Backend(e.to_string()))?;
    let (id, version, instance) = (
        credential.id.to_string(),
        credential.version as i64,
        credential.instance.is_some(),
    );
    store
        .with_db(move |db| {
            let inserted = db
                .execute(
                    "INSERT INTO credentials (id, version, instance, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
                    params![id, version, instance, body],
                )
                .map_err(backend)?;
            Ok(inserted == 1)
        })
        .await
}

pub(super) async fn get_credential(
    store: &SqliteStore,
    id: &CredentialId,
) -> Result<Option<Credential>, StoreError> {
    let id = id.to_string();
    store
        .with_db(move |db| {
            let body: Option<String> = db
                .query_row(
                    "SELECT body FROM credentials WHERE id = ?1",
                    params![id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            body.as_deref().map(credential_from_body).transpose()
        })
        .await
}

pub(super) async fn replace_credential(
    store: &SqliteStore,
    credential: &Credential,
) -> Result<bool, StoreError> {
    let mut next = credential.clone();
    next.version += 1;
    let body = serde_json::to_string(&next).map_err(|e| StoreError::Backend(e.to_string()))?;
    let (id, expected, version, instance) = (
        credential.id.to_string(),
        credential.version as i64,
        next.version as i64,
        next.instance.is_some(),
    );
    store
        .with_db(move |db| {
            let updated = db
                .execute(
                    "UPDATE credentials SET version = ?3, instance = ?4, body = ?5
                 WHERE id = ?1 AND version = ?2",
                    params![id, expected, version, instance, body],
                )
                .map_err(backend)?;
            Ok(updated == 1)
        })
        .await
}

pub(super) async fn delete_credential(
    store: &SqliteStore,
    id: &CredentialId,
    expected_version: u64,
) -> Result<bool, StoreError> {
    let id = id.to_string();
    store
        .with_db(move |db| {
            let deleted = db
                .execute(
                    "DELETE FROM credentials WHERE id = ?1 AND version = ?2",
                    params![id, expected_version as i64],
                )
                .map_err(backend)?;
            Ok(deleted == 1)
        })
        .await
}

pub(super) async fn list_instance_credentials(
    store: &SqliteStore,
) -> Result<Vec<Credential>, StoreError> {
    store
        .with_db(move |db| {
            let mut statement = db
                .prepare("SELECT body FROM credentials WHERE instance = 1 ORDER BY id")
                .map_err(backend)?;
            let mut rows = statement.query([]).map_err(backend)?;
            let mut credentials = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                let body: String = row.get(0).map_err(backend)?;
                credentials.push(credential_from_body(&body)?);
            }
            Ok(credentials)
        })
        .await
}
