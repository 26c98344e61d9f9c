//! The message that asks for one connection's sync. The queues that carry it implement
//! [`crate::ports::SyncQueue`]: SQS in AWS, [`crate::store::MemoryQueue`] locally.

use crate::connection::ConnectionId;
use crate::run::{RunId, SyncReason, SyncRun};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The body of a sync message: `{"connectionId", "reason", "requestedAt"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    pub connection_id: ConnectionId,
    pub reason: SyncReason,
    pub requested_at: DateTime<Utc>,
    /// The run this request starts, when its caller was answered the run's id (connect,
    /// sync, resume): the run record is found under it. Each delivery of the message runs
    /// under the same id, so the record is the last delivery's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("malformed sync message: {0} — expected {{\"connectionId\": \"…\", \"reason\": \"scheduled\" | \"connected\" | \"on_demand\", \"requestedAt\": \"RFC 3339 time\", \"runId\"?: \"…\"}}")]
pub struct MalformedMessage(pub String);

impl SyncRequest {
    pub fn new(
        connection_id: ConnectionId,
        reason: SyncReason,
        requested_at: DateTime<Utc>,
    ) -> Self {
        Self {
            connection_id,
            reason,
            requested_at,
            run_id: None,
        }
    }

    /// The same request, its run to be recorded under `run_id`.
    pub fn with_run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// The run this request starts at `at`: under its own id when it names one.
    pub fn start_run(&self, at: DateTime<Utc>) -> SyncRun {
        let mut run = SyncRun::start(self.connection_id.clone(), self.reason, at);
        if let Some(run_id) = self.run_id {
            run.run_id = run_id;
        }
        run
    }

    pub fn parse(body: &str) -> Result<Self, MalformedMessage> {
        serde_json::from_str(body).map_err(|e| MalformedMessage(e.to_string()))
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a sync request always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    #[test]
    fn a_request_round_trips_through_its_body() {
        let request = SyncRequest::new(
            ConnectionId::parse("c-1").unwrap(),
            SyncReason::Scheduled,
            DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        let body = request.to_body();
        assert_eq!(
            body,
            r#"{"connectionId":"c-1","reason":"scheduled","requestedAt":"2026-11-22T10:00:00Z"}"#
        );
        assert_eq!(SyncRequest::parse(&body).unwrap(), request);
    }

    #[test]
    fn malformed_bodies_are_refused_with_what_was_expected() {
        for body in [
            "",
            "not json",
            r#"{"connectionId":"c-1"}"#,
            r#"{"connectionId":"a b","reason":"scheduled","requestedAt":"2026-11-22T10:00:00Z"}"#,
            r#"{"connectionId":"c-1","reason":"whenever","requestedAt":"2026-11-22T10:00:00Z"}"#,
        ] {
            let err = SyncRequest::parse(body).unwrap_err();
            assert!(
                err.to_string().contains("expected {\"connectionId\""),
                "{err}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// A body SQS hands over may be anything: it is a request or an error that says what
        /// was expected, never a panic.
        #[test]
        fn any_message_body_is_a_request_or_an_error_saying_what_was_expected(
            body in proptest::prop_oneof![
                ".{0,80}",
                crate::arbitrary::json(&["connectionId", "reason", "requestedAt"])
                    .prop_map(|v| v.to_string()),
            ]
        ) {
            if let Err(error) = SyncRequest::parse(&body) {
                let expected = error.to_string().contains("expected {\"connectionId\"");
                proptest::prop_assert!(expected, "{}", error);
            }
        }
    }
}
