//! Connect requests' answers: the `request_answers` table behind [`RequestLog`], so a retried
//! request is answered as it was the first time.

use super::{backend, text, SqliteStore};
use crate::ports::{RequestLog, StoreError};
use crate::tenant::TenantId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

#[async_trait]
impl RequestLog for SqliteStore {
    async fn answer_of(
        &self,
        tenant: &TenantId,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let (tenant, request) = (tenant.to_string(), request.to_string());
        self.with_db(move |db| {
            db.query_row(
                "SELECT answer FROM request_answers
                 WHERE tenant_id = ?1 AND request_id = ?2 AND expires_at > ?3",
                params![tenant, request, text(now)],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn keep_answer(
        &self,
        tenant: &TenantId,
        request: &str,
        answer: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (tenant, request, answer) =
            (tenant.to_string(), request.to_string(), answer.to_string());
        self.with_db(move |db| {
            // The first answer of a request stays until it expires.
            db.execute(
                "INSERT INTO request_answers (tenant_id, request_id, answer, expires_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id, request_id) DO UPDATE
                 SET answer = excluded.answer, expires_at = excluded.expires_at
                 WHERE request_answers.expires_at <= ?5",
                params![tenant, request, answer, text(expires_at), text(now)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
