//! The token never appears in a log line, an error, a run record or the store.

use makesync::ports::{ConnectionStore, SyncRunStore, UserStore};
use makesync::store::SqliteStore;
use makesync::sync::SyncEngine;
use makesync_simulator::{demo_world, TokenGrant};
use makesync_tests::{CapturedLogs, TestEnv, ACME};
use std::sync::Arc;

const SECRET: &str = "tok-9f8e7d6c5b4a-SECRET";
const REVOKED_SECRET: &str = "tok-revoked-0a1b2c3d-SECRET";

#[tokio::test]
async fn the_token_is_absent_from_logs_errors_runs_and_the_store() {
    let mut world = demo_world();
    world.add_token(
        SECRET,
        TokenGrant::new(1, &["organizations:read", "user:read"]),
    );
    world.add_token(
        REVOKED_SECRET,
        TokenGrant {
            revoked: true,
            ..TokenGrant::new(1, &["organizations:read", "user:read"])
        },
    );
    let env = TestEnv::start_with(world, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("makesync.db");
    let sqlite = Arc::new(SqliteStore::open(&db).unwrap());
    let engine = SyncEngine::new(
        sqlite.clone(),
        sqlite.clone(),
        sqlite.clone(),
        Arc::new(env.clock.clone()),
    );

    let logs = CapturedLogs::default();
    let guard = logs.install();
    let connection = env.connection("eu1.make.com", ACME);
    sqlite.create_connection(&connection).await.unwrap();
    let mut reports = Vec::new();
    // A success, retries through 5xx and 429, a malformed page, and a rejected token.
    reports.push(
        engine
            .sync(
                &connection,
                &env.client(&connection, SECRET),
                makesync::run::SyncReason::OnDemand,
            )
            .await,
    );
    {
        let mut world = env.simulator.world();
        world.faults.server_errors = 2;
        world.faults.rate_limited = 1;
    }
    reports.push(
        engine
            .sync(
                &connection,
                &env.client(&connection, SECRET),
                makesync::run::SyncReason::OnDemand,
            )
            .await,
    );
    env.simulator.world().faults.malformed_pages = 1;
    reports.push(
        engine
            .sync(
                &connection,
                &env.client(&connection, SECRET),
                makesync::run::SyncReason::OnDemand,
            )
            .await,
    );
    reports.push(
        engine
            .sync(
                &connection,
                &env.client(&connection, REVOKED_SECRET),
                makesync::run::SyncReason::OnDemand,
            )
            .await,
    );
    drop(guard);

    let text = logs.text();
    assert!(
        text.lines().count() > 20,
        "the capture saw the syncs:\n{text}"
    );
    assert!(
        text.contains("Make request failed, retrying"),
        "retries were logged"
    );
    for secret in [SECRET, REVOKED_SECRET] {
        assert!(!text.contains(secret), "a log line holds the token");
        for report in &reports {
            assert!(
                !format!("{report:?}").contains(secret),
                "a report holds the token"
            );
            if let Some(error) = &report.run.error {
                assert!(!error.message.contains(secret));
            }
        }
    }
    assert!(
        reports.iter().any(|r| r.run.error.is_some()),
        "failures were exercised"
    );

    let runs = sqlite.list_runs(&connection.id, 10).await.unwrap();
    assert_eq!(runs.len(), 4);
    let users = sqlite.list_users(&connection.id).await.unwrap();
    assert!(!format!("{runs:?}{users:?}").contains(SECRET));
    drop(sqlite);
    let bytes = std::fs::read(&db).unwrap();
    let file = String::from_utf8_lossy(&bytes);
    assert!(!file.contains(SECRET), "the store file holds the token");
}

#[tokio::test]
async fn every_log_line_about_a_sync_carries_its_connection_and_run() {
    let env = TestEnv::start().await;
    let connection = env.connection("eu1.make.com", ACME);
    env.simulator.world().faults.server_errors = 1;
    let logs = CapturedLogs::default();
    let guard = logs.install();
    let report = env.sync(&connection).await;
    drop(guard);
    let run_id = report.run.run_id.to_string();
    let ours: Vec<serde_json::Value> = logs
        .text()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON"))
        .filter(|line| {
            line["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("makesync"))
        })
        .collect();
    assert!(ours.len() >= 3, "sync started, a retry, sync finished");
    for line in &ours {
        assert_eq!(
            line["span"]["connection_id"].as_str(),
            Some(connection.id.as_str()),
            "{line}"
        );
        assert_eq!(
            line["span"]["run_id"].as_str(),
            Some(run_id.as_str()),
            "{line}"
        );
    }
}
