//! Connect requests' answers, kept in the runs table behind [`RequestLog`], so a retried request
//! is answered as it was the first time.

use super::{condition_failed, store_error, DynamoStore};
use crate::adapters::aws::item::{number, string, Item};
use crate::adapters::aws::sdk_error::classify;
use crate::ports::{RequestLog, StoreError};
use crate::tenant::TenantId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[async_trait]
impl RequestLog for DynamoStore {
    async fn answer_of(
        &self,
        tenant: &TenantId,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.runs_table)
            .set_key(Some(answer_key(tenant, request)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let expires = item
            .get("expiresAt")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        if expires <= now.timestamp() {
            return Ok(None);
        }
        Ok(item.get("answer").and_then(|v| v.as_s().ok()).cloned())
    }

    async fn keep_answer(
        &self,
        tenant: &TenantId,
        request: &str,
        answer: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut item = answer_key(tenant, request);
        item.insert("answer".into(), string(answer));
        item.insert("expiresAt".into(), number(expires_at.timestamp()));
        let written = self
            .client
            .put_item()
            .table_name(&self.runs_table)
            .set_item(Some(item))
            // The first answer kept stays until it expires (the table's TTL deletes it
            // only some time after).
            .condition_expression("attribute_not_exists(connectionId) OR expiresAt <= :now")
            .expression_attribute_values(":now", number(now.timestamp()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(error) if condition_failed(&error) => Ok(()),
            Err(error) => Err(store_error(classify(&error))),
        }
    }
}

/// Where the answer to a request is kept: in the runs table (it expires like a run), under a
/// partition no connection id can take (`#` is in none) — the request id first, which holds
/// no `#` either, so that no two tenants' requests share one.
fn answer_key(tenant: &TenantId, request: &str) -> Item {
    Item::from([
        (
            "connectionId".to_string(),
            string(format!("request#{request}#{tenant}")),
        ),
        ("runId".to_string(), string("answer")),
    ])
}
