//! The metrics each function writes, parsed as CloudWatch reads Embedded Metric Format lines.

use makesync::metrics::{EmfMemory, NAMESPACE};
use makesync::schedule::Scheduler;
use makesync::store::MemoryQueue;
use makesync::store::{MemorySecrets, MemoryStore};
use makesync::sync::SyncEngine;
use makesync::worker::Worker;
use makesync_simulator::DEMO_TOKEN;
use makesync_tests::{TestEnv, ACME};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Checks one line is valid EMF and returns it parsed: every metric it declares is a number
/// at the top level, every dimension a string, and no dimension names a connection, tenant
/// or organization.
fn parse(line: &str) -> Value {
    let record: Value = serde_json::from_str(line).expect("one JSON object per line");
    let directive = &record["_aws"]["CloudWatchMetrics"][0];
    assert!(record["_aws"]["Timestamp"].as_i64().unwrap() > 0);
    assert_eq!(directive["Namespace"], NAMESPACE);
    for set in directive["Dimensions"].as_array().unwrap() {
        for dimension in set.as_array().unwrap() {
            let name = dimension.as_str().unwrap();
            assert!(
                ["Function", "Outcome", "ErrorKind"].contains(&name),
                "high-cardinality dimension {name}"
            );
            assert!(record[name].is_string(), "{name} has a value: {line}");
        }
    }
    for metric in directive["Metrics"].as_array().unwrap() {
        let name = metric["Name"].as_str().unwrap();
        assert!(record[name].is_number(), "{name} is a number: {line}");
        assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap()));
    }
    record
}

fn metric_names(record: &Value) -> BTreeSet<String> {
    record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn syncs_fan_outs_and_batches_write_their_metrics_as_emf_lines() {
    let env = TestEnv::start().await;
    let metrics = Arc::new(EmfMemory::default());
    let store = Arc::new(MemoryStore::new());
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), env.clock_arc())
        .with_metrics(metrics.clone());
    let acme = env.connection("eu1.make.com", ACME);
    makesync::ports::ConnectionStore::create_connection(store.as_ref(), &acme)
        .await
        .unwrap();
    env.simulator.world().faults.rate_limited = 1;
    let client = env.client(&acme, DEMO_TOKEN);
    engine
        .sync(&acme, &client, makesync::run::SyncReason::Scheduled)
        .await;
    let revoked = env.client(&acme, "sim-token-revoked");
    engine
        .sync(&acme, &revoked, makesync::run::SyncReason::Scheduled)
        .await;

    let queue = Arc::new(MemoryQueue::default());
    Scheduler::new(store.clone(), queue, env.clock_arc())
        .with_metrics(metrics.clone())
        .fan_out()
        .await
        .unwrap();
    Worker::new(
        store.clone(),
        Arc::new(MemorySecrets::default()),
        engine.clone(),
        env.make.clone(),
    )
    .with_metrics(metrics.clone())
    .record_batch(10, 2);

    let lines = metrics.lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let records: Vec<Value> = lines.iter().map(|line| parse(line)).collect();

    let ok = &records[0];
    assert_eq!(ok["Outcome"], "succeeded");
    assert_eq!(ok["ErrorKind"], "none");
    assert_eq!(ok["Syncs"], 1.0);
    assert_eq!(ok["SyncsFailed"], 0.0);
    assert_eq!(ok["UsersFetched"], 36.0);
    assert_eq!(ok["UsersAdded"], 36.0);
    assert_eq!(ok["RateLimitWaits"], 1.0, "the 429 was waited out");
    assert!(ok["MakeRequests"].as_f64().unwrap() >= 4.0);
    assert!(metric_names(ok).is_superset(
        &[
            "SyncDuration",
            "UsersUpdated",
            "UsersRemoved",
            "MakeRetries",
            "RateLimitWaitTime"
        ]
        .map(String::from)
        .into()
    ));
    let dimension_sets = &ok["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
    assert_eq!(
        dimension_sets,
        &serde_json::json!([["Function"], ["Function", "Outcome", "ErrorKind"]])
    );

    let failed = &records[1];
    assert_eq!(failed["Outcome"], "failed");
    assert_eq!(failed["ErrorKind"], "auth");
    assert_eq!(failed["SyncsFailed"], 1.0);

    let fan_out = &records[2];
    assert_eq!(fan_out["ConnectionsSeen"], 1.0);
    assert_eq!(fan_out["SyncsEnqueued"], 1.0);
    assert_eq!(fan_out["EnqueueFailures"], 0.0);
    assert!(metric_names(fan_out).contains("SkippedInFlight"));

    let batch = &records[3];
    assert_eq!(
        (batch["Records"].as_f64(), batch["RecordsReturned"].as_f64()),
        (Some(10.0), Some(2.0))
    );
    for record in &records {
        let text = record.to_string();
        assert!(
            !text.contains(acme.id.as_str()),
            "no connection id in metrics: {text}"
        );
    }
}
