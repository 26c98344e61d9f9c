//! Sync run items: the runs table behind [`SyncRunStore`], expiring through `expiresAt`.

use super::{decode, store_error, DynamoStore};
use crate::adapters::aws::item::{number, string, to_item, Item};
use crate::adapters::aws::sdk_error::classify;
use crate::connection::ConnectionId;
use crate::ports::{StoreError, SyncRunStore};
use crate::run::SyncRun;
use async_trait::async_trait;

#[async_trait]
impl SyncRunStore for DynamoStore {
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let mut item = to_item(serde_json::to_value(run).expect("a run serialises"));
        let expires = run.started_at.timestamp() + self.run_retention.as_secs() as i64;
        item.insert("expiresAt".into(), number(expires));
        self.client
            .put_item()
            .table_name(&self.runs_table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        Ok(())
    }

    async fn list_runs(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let mut runs = Vec::new();
        let mut start: Option<Item> = None;
        while runs.len() < limit {
            let output = self
                .client
                .query()
                .table_name(&self.runs_table)
                .key_condition_expression("connectionId = :c")
                .expression_attribute_values(":c", string(connection.as_str()))
                .scan_index_forward(false)
                .limit((limit - runs.len()).min(1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(classify(&e)))?;
            for item in output.items() {
                let mut item = item.clone();
                item.remove("expiresAt");
                runs.push(decode(&item, "sync run")?);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(runs)
    }
}
