//! User items: the users table behind [`UserStore`], one partition a connection, with the
//! write guard at `userId` 0 that refuses an older or closed run's writes.

use super::{
    condition_failed, decode, delete, put, store_error, DynamoStore, BATCH_GET_LIMIT,
    BATCH_WRITE_LIMIT, EXPIRES_AT, GUARD_USER_ID,
};
use crate::adapters::aws::item::{number, string, to_item, Item};
use crate::adapters::aws::sdk_error::classify;
use crate::connection::ConnectionId;
use crate::ports::{StoreError, UserStore, WriteStamp};
use crate::user::{MakeUserId, StoredUser, UserRecord, UserStatus};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};

impl DynamoStore {
    /// Items of one partition of the users table with `userId > after` (the guard, at 0,
    /// only when `after` is `None`), by id, at most `limit` of them, with only the attributes
    /// of `projection` when one is given.
    async fn query_users(
        &self,
        connection: &ConnectionId,
        after: Option<u64>,
        limit: Option<usize>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.users_table)
                .key_condition_expression("connectionId = :c AND userId >= :from")
                .expression_attribute_values(":c", string(connection.as_str()))
                .expression_attribute_values(":from", number(after.map_or(0, |id| id + 1)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if let Some(limit) = limit {
                query = query.limit((limit - items.len()).clamp(1, 1000) as i32);
            }
            if let Some(projection) = projection {
                query = query.projection_expression(projection);
                if projection.contains("#status") {
                    // `status` is a reserved word in DynamoDB expressions.
                    query = query.expression_attribute_names("#status", "status");
                }
            }
            let output = query.send().await.map_err(|e| store_error(classify(&e)))?;
            items.extend(output.items().iter().cloned());
            if limit.is_some_and(|limit| items.len() >= limit) {
                break;
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    async fn read_guard(&self, connection: &ConnectionId) -> Result<UsersGuard, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("connectionId", string(connection.as_str()))
            .key("userId", number(GUARD_USER_ID))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        let item = output.item();
        let number_of = |name: &str| {
            item.and_then(|item| item.get(name))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        Ok(UsersGuard {
            written_by: number_of("usersWrittenBy")
                .and_then(|micros| Utc.timestamp_micros(micros).single()),
            closes: number_of("userCloses").map_or(0, |n| n.max(0) as u64),
        })
    }

    /// Claims the connection's users for the run `stamp` names: refused, as
    /// [`StoreError::UsersClosed`] or [`StoreError::StaleRun`], if the users were closed since
    /// the run began or a newer run already wrote.
    async fn claim_users(
        &self,
        connection: &ConnectionId,
        stamp: &WriteStamp,
    ) -> Result<(), StoreError> {
        let run_started_at = stamp.started_at;
        // Claim the partition for this run first: if the users were closed since the run
        // began, or a newer run already wrote, nothing of this one is written. Runs of one
        // connection do not overlap (the sync lease), so the claim and the batch writes that
        // follow need no transaction.
        // On a first sync the claim creates the guard item with the number of users the run
        // adds: the change-event function announces the run from that one stream record.
        let closes = if stamp.closes_seen == 0 {
            "attribute_not_exists(userCloses)"
        } else {
            "userCloses = :closes"
        };
        let mut claim = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("connectionId", string(connection.as_str()))
            .key("userId", number(GUARD_USER_ID))
            .condition_expression(format!(
                "{closes} AND (attribute_not_exists(usersWrittenBy) OR usersWrittenBy <= :started)"
            ))
            .expression_attribute_values(":started", number(run_started_at.timestamp_micros()))
            .expression_attribute_values(":started_text", string(run_started_at.to_rfc3339()))
            .expression_attribute_values(":run", string(stamp.run_id.clone()));
        if stamp.closes_seen != 0 {
            claim = claim.expression_attribute_values(":closes", number(stamp.closes_seen));
        }
        claim = match stamp.first_sync_users {
            Some(users) => claim
                .update_expression(
                    "SET usersWrittenBy = :started, usersWrittenAt = :started_text, runId = :run, firstSyncUsers = :users",
                )
                .expression_attribute_values(":users", number(users)),
            None => claim.update_expression(
                "SET usersWrittenBy = :started, usersWrittenAt = :started_text, runId = :run",
            ),
        };
        let claimed = claim.send().await;
        if let Err(error) = claimed {
            if condition_failed(&error) {
                let guard = self.read_guard(connection).await?;
                if guard.closes != stamp.closes_seen {
                    return Err(StoreError::UsersClosed {
                        seen: stamp.closes_seen,
                        now: guard.closes,
                    });
                }
                return Err(StoreError::StaleRun {
                    this: run_started_at,
                    newer: guard.written_by.unwrap_or(run_started_at),
                });
            }
            return Err(store_error(classify(&error)));
        }
        Ok(())
    }
}

/// The users' write guard, on the users table's guard item.
struct UsersGuard {
    /// The start of the run that last wrote the users.
    written_by: Option<DateTime<Utc>>,
    /// How many times the users were closed.
    closes: u64,
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn list_users_page(
        &self,
        connection: &ConnectionId,
        after: Option<MakeUserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.query_users(
            connection,
            Some(after.unwrap_or(0)),
            Some(limit.max(1)),
            None,
        )
        .await?
        .iter()
        .map(|item| decode(item, "user"))
        .collect()
    }

    async fn list_user_digests(
        &self,
        connection: &ConnectionId,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let items = self
            .query_users(
                connection,
                Some(0),
                None,
                Some("userId, digest, teamsDigest, #status, expiresAt"),
            )
            .await?;
        items
            .iter()
            .map(|item| {
                let number_of = |name: &str| {
                    item.get(name)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<u64>().ok())
                };
                let removed = item.get("status").and_then(|v| v.as_s().ok())
                    == Some(&UserStatus::Removed.as_str().to_string());
                Ok(StoredUser {
                    user_id: number_of("userId").ok_or_else(|| {
                        StoreError::Corrupt("a user item without a numeric userId".into())
                    })?,
                    digest: number_of("digest"),
                    teams_digest: number_of("teamsDigest"),
                    removed,
                    lacks_expiry: removed && !item.contains_key(EXPIRES_AT),
                })
            })
            .collect()
    }

    async fn get_users(
        &self,
        connection: &ConnectionId,
        ids: &[MakeUserId],
    ) -> Result<Vec<UserRecord>, StoreError> {
        let mut users = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_LIMIT) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| {
                    Item::from([
                        ("connectionId".to_string(), string(connection.as_str())),
                        ("userId".to_string(), number(id)),
                    ])
                })
                .collect();
            for item in self.batch_get(&self.users_table, keys).await? {
                users.push(decode(&item, "user")?);
            }
        }
        Ok(users)
    }

    async fn write_users(
        &self,
        connection: &ConnectionId,
        stamp: &WriteStamp,
        changed: &[UserRecord],
    ) -> Result<(), StoreError> {
        self.claim_users(connection, stamp).await?;
        // Items are made a batch at a time: an item map is several times the record's size.
        for batch in changed.chunks(BATCH_WRITE_LIMIT) {
            let requests = batch
                .iter()
                .map(|user| {
                    let mut item = to_item(serde_json::to_value(user).expect("a user serialises"));
                    item.insert("connectionId".into(), string(connection.as_str()));
                    item.insert("digest".into(), number(user.digest()));
                    if let Some(teams) = user.teams_digest() {
                        item.insert("teamsDigest".into(), number(teams));
                    }
                    item.insert("runId".into(), string(stamp.run_id.clone()));
                    if stamp.first_sync_users.is_some() {
                        item.insert("firstSync".into(), AttributeValue::Bool(true));
                    }
                    // The table's TTL deletes a removed user this long after its removal; a
                    // user written back present has no expiry (the item is replaced whole).
                    if let (Some(keep), Some(removed_at)) =
                        (stamp.removed_user_retention, user.removed_at)
                    {
                        item.insert(EXPIRES_AT.into(), number((removed_at + keep).timestamp()));
                    }
                    put(item)
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.batch_write(&self.users_table, requests).await?;
        }
        Ok(())
    }

    async fn users_closes(&self, connection: &ConnectionId) -> Result<u64, StoreError> {
        Ok(self.read_guard(connection).await?.closes)
    }

    async fn close_users(
        &self,
        connection: &ConnectionId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // ADD is atomic: two closes at once count two.
        self.client
            .update_item()
            .table_name(&self.users_table)
            .key("connectionId", string(connection.as_str()))
            .key("userId", number(GUARD_USER_ID))
            .update_expression("ADD userCloses :one SET usersClosedAt = :at_text")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":at_text", string(at.to_rfc3339()))
            .send()
            .await
            .map_err(|error| store_error(classify(&error)))?;
        Ok(())
    }

    async fn delete_users_page(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<usize, StoreError> {
        // From user id 1: the guard at 0 stays, so that no run older than the erasure writes.
        let requests = self
            .query_users(
                connection,
                Some(0),
                Some(limit.max(1)),
                Some("connectionId, userId"),
            )
            .await?
            .into_iter()
            .map(delete)
            .collect::<Result<Vec<_>, _>>()?;
        let deleted = requests.len();
        self.batch_write(&self.users_table, requests).await?;
        Ok(deleted)
    }
}
