//! Metrics as CloudWatch Embedded Metric Format (EMF) log lines: one JSON object per line,
//! which CloudWatch Logs turns into metrics — no API call, no extra latency, nothing to fail.
//!
//! Every record is published under two dimension sets: `Function` alone (what alarms and the
//! dashboard read, summed over outcomes), and `Function`, `Outcome`, `ErrorKind`. Dimensions
//! stay low-cardinality: never a connection, tenant or organization id.

use crate::error::ErrorKind;
use crate::run::SyncRun;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use std::time::Duration;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "makesync";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF line's worth: values with their units, and the outcome dimensions (the sink adds
/// `Function`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRecord {
    pub at: DateTime<Utc>,
    /// `Outcome` and `ErrorKind`, for the records that have an outcome.
    pub outcome: Option<(&'static str, &'static str)>,
    pub values: Vec<(&'static str, f64, Unit)>,
}

impl MetricsRecord {
    /// What one sync run did.
    pub fn for_sync(
        run: &SyncRun,
        duration: Duration,
        rate_limit_waits: u32,
        rate_limit_wait: Duration,
    ) -> Self {
        let error_kind = run.error.as_ref().map_or("none", |e| e.kind.as_str());
        let failed = run
            .error
            .as_ref()
            .is_some_and(|e| e.kind != ErrorKind::Stale);
        let c = run.counts;
        Self {
            at: run.finished_at.unwrap_or(run.started_at),
            outcome: Some((run.outcome.as_str(), error_kind)),
            values: vec![
                ("Syncs", 1.0, Unit::Count),
                ("SyncsFailed", f64::from(u8::from(failed)), Unit::Count),
                (
                    "SyncDuration",
                    duration.as_millis() as f64,
                    Unit::Milliseconds,
                ),
                ("UsersFetched", f64::from(c.fetched), Unit::Count),
                ("UsersAdded", f64::from(c.added), Unit::Count),
                ("UsersUpdated", f64::from(c.updated), Unit::Count),
                ("UsersRemoved", f64::from(c.removed), Unit::Count),
                ("MakeRequests", f64::from(run.make_requests), Unit::Count),
                ("MakeRetries", f64::from(run.retries), Unit::Count),
                ("RateLimitWaits", f64::from(rate_limit_waits), Unit::Count),
                (
                    "RateLimitWaitTime",
                    rate_limit_wait.as_millis() as f64,
                    Unit::Milliseconds,
                ),
            ],
        }
    }

    /// A connection whose runs have failed `failures` times in a row, past the operator's
    /// threshold: one count per such run, so the alarm stays on while the streak lasts.
    pub fn for_failing_streak(failures: u32, at: DateTime<Utc>) -> Self {
        Self {
            at,
            outcome: None,
            values: vec![
                ("ConnectionsFailingLong", 1.0, Unit::Count),
                ("ConsecutiveFailures", f64::from(failures), Unit::Count),
            ],
        }
    }

    /// What one worker invocation did with its batch.
    pub fn for_batch(records: usize, returned: usize, at: DateTime<Utc>) -> Self {
        Self {
            at,
            outcome: None,
            values: vec![
                ("Records", records as f64, Unit::Count),
                ("RecordsReturned", returned as f64, Unit::Count),
            ],
        }
    }

    /// The EMF JSON line, with `Function` as a dimension.
    pub fn to_emf(&self, function: &str) -> String {
        let mut dimension_sets = vec![json!(["Function"])];
        let mut line = Map::new();
        line.insert("Function".into(), Value::from(function));
        if let Some((outcome, error_kind)) = self.outcome {
            dimension_sets.push(json!(["Function", "Outcome", "ErrorKind"]));
            line.insert("Outcome".into(), Value::from(outcome));
            line.insert("ErrorKind".into(), Value::from(error_kind));
        }
        let metrics: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        for (name, value, _) in &self.values {
            line.insert((*name).into(), json!(value));
        }
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimension_sets,
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(line).to_string()
    }
}

/// Where metrics go.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, record: &MetricsRecord);
}

/// Nowhere: the CLI and most tests.
pub struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn emit(&self, _: &MetricsRecord) {}
}

/// EMF lines on standard output, which Lambda sends to CloudWatch Logs.
pub struct EmfStdout {
    function: String,
}

impl EmfStdout {
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: function.into(),
        }
    }

    /// Named after the function Lambda says this is (`AWS_LAMBDA_FUNCTION_NAME`).
    pub fn for_this_function(default: &str) -> Self {
        Self::new(std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| default.to_string()))
    }
}

impl MetricsSink for EmfStdout {
    fn emit(&self, record: &MetricsRecord) {
        println!("{}", record.to_emf(&self.function));
    }
}

/// EMF lines kept in memory, for tests.
#[derive(Default)]
pub struct EmfMemory {
    lines: Mutex<Vec<String>>,
}

impl EmfMemory {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl MetricsSink for EmfMemory {
    fn emit(&self, record: &MetricsRecord) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.to_emf("test"));
    }
}
